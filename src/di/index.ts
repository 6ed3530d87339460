import { ContainerModule, type ServiceIdentifier } from 'inversify';
import { type ConnectOptions, connect } from '../connect.js';
import type { Broker, Producer } from '../core/broker.js';
import { type ProducerOptions, refuseUnknownKeys } from '../core/options.js';

/** What the module binds; `url` falls back to `MQ_URL`, then `memory://`. */
export interface MqkitConfig {
  url: string;
  producer: ProducerOptions;
  connect: ConnectOptions;
}

/** Tokens to inject: `@inject(MQ_PRODUCER) producer: Producer`. */
export const MQ_CONFIG: ServiceIdentifier<MqkitConfig> = Symbol.for('mqkit.Config');
export const MQ_BROKER: ServiceIdentifier<Broker> = Symbol.for('mqkit.Broker');
export const MQ_PRODUCER: ServiceIdentifier<Producer> = Symbol.for('mqkit.Producer');

/**
 * An inversify module binding the config, one broker connection and one producer as
 * singletons. The broker connects on first resolution, so resolve with `container.getAsync`.
 * `container.unbindAllAsync()` (or unloading the module) closes the producer and the broker.
 */
export function mqkitModule(config: Partial<MqkitConfig> = {}): ContainerModule {
  refuseUnknownKeys(config, ['url', 'producer', 'connect'], 'mqkitModule.');
  const resolved: MqkitConfig = {
    url: config.url ?? process.env.MQ_URL ?? 'memory://',
    producer: config.producer ?? {},
    connect: config.connect ?? {},
  };
  return new ContainerModule(({ bind }) => {
    bind(MQ_CONFIG).toConstantValue(resolved);
    bind(MQ_BROKER)
      .toDynamicValue(async (ctx) => {
        const c = ctx.get(MQ_CONFIG);
        return connect(c.url, c.connect);
      })
      .inSingletonScope()
      .onDeactivation((broker) => broker.close());
    bind(MQ_PRODUCER)
      .toDynamicValue(async (ctx) => (await ctx.getAsync(MQ_BROKER)).producer(ctx.get(MQ_CONFIG).producer))
      .inSingletonScope()
      .onDeactivation((producer) => producer.close());
  });
}

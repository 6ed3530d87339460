import { type AdapterContext, defaultAdapterContext } from '../../core/adapter-context.js';
import type { Broker } from '../../core/broker.js';
import { urlSecrets } from '../../core/redact.js';
import { RocketMqBroker } from './broker.js';
import { type RocketMqBrokerOptions, resolveRocketMqOptions } from './options.js';

export { rocketmqCapabilities } from './broker.js';
export type { RocketMqBrokerOptions } from './options.js';

/**
 * Connects to RocketMQ 5 through its proxy's gRPC endpoint:
 * `rocketmq://[accessKey:secret@]host:port[?namesrv=host:port]`. The name server (query
 * parameter or `rocketmq.namesrv`) is used for administration the proxy does not offer:
 * creating topics and groups, `startFrom` and `backlog`. Nothing is sent until first use.
 */
export async function createRocketMqBroker(
  url: URL,
  options?: RocketMqBrokerOptions,
  context: AdapterContext = defaultAdapterContext(),
): Promise<Broker> {
  const resolved = resolveRocketMqOptions(url, options);
  return new RocketMqBroker(resolved, context, urlSecrets(url));
}

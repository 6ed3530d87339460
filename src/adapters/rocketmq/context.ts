import type { MqError } from '../../core/errors.js';
import type { WireMessage } from '../../core/wire.js';
import type { RocketMqAdmin } from './admin.js';
import type { ResolvedRocketMqOptions } from './options.js';

/** What producers and subscriptions of one connection share; implemented by the broker. */
export interface RocketMqContext {
  readonly admin: RocketMqAdmin;
  readonly options: ResolvedRocketMqOptions;
  /** Options every rocketmq-client-nodejs client of this connection gets (endpoints, credentials, logger). */
  readonly clientOptions: {
    endpoints: string;
    namespace: string;
    sessionCredentials?: { accessKey: string; accessSecret: string };
    requestTimeout: number;
    logger: ReturnType<typeof import('./client-errors.js').clientLogger>;
  };
  /** Sends an encoded message through the connection's shared producer, confirmed. */
  publishRaw(wire: WireMessage): Promise<void>;
  /** A client error as an MqError, secrets scrubbed. */
  error(error: unknown, what: string): MqError;
}

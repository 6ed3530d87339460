export type { KafkaBrokerOptions } from './adapters/kafka/index.js';
export type { MemoryBrokerOptions } from './adapters/memory/index.js';
export type { RabbitMqBrokerOptions } from './adapters/rabbitmq/index.js';
export type { AdapterContext, AdapterFactory, ConnectOptions } from './connect.js';
export { connect, registerAdapter } from './connect.js';
export type {
  Acks,
  Admin,
  Backlog,
  BatchMessage,
  Broker,
  Capabilities,
  MessageStream,
  Producer,
  Subscription,
} from './core/broker.js';
export type { Codec, TopicSpec } from './core/codec.js';
export { bytesCodec, defineTopic, jsonCodec } from './core/codec.js';
export type { MqErrorCode } from './core/errors.js';
export {
  ClosedError,
  ConfigError,
  ConflictError,
  ConnectionError,
  DecodeError,
  isMqError,
  MqError,
  PublishError,
  TimeoutError,
  UnsupportedError,
} from './core/errors.js';
export type { DeliveryEvent, EventSource, MqEventListener, MqEventName, MqEvents } from './core/events.js';
export type { Logger } from './core/logger.js';
export type {
  BatchFailures,
  BatchHandler,
  DeadLetterInfo,
  Delivery,
  Handler,
  Headers,
  IdOrigin,
  OutgoingMessage,
  SendResult,
  TopicRef,
} from './core/message.js';
export type {
  BackoffOptions,
  BatchOptions,
  BatchSubscribeOptions,
  ProducerOptions,
  RetryOptions,
  StartFrom,
  SubscribeOptions,
} from './core/options.js';
export type { TlsOptions } from './core/tls.js';

/**
 * `mqkit/adapter`: what a broker adapter is written against. An adapter exports an
 * `AdapterFactory` (register it with `registerAdapter`) whose `Broker`:
 *
 * - validates options with `resolveSubscription`, `resolveProducerOptions` and
 *   `resolveEnsureTopic`, and encodes messages with `encodeMessage` (the wire format every
 *   adapter shares, so a message keeps its id, tag, key and headers across brokers);
 * - consumes through a `ConsumerEngine`: the adapter implements a `ConsumerTransport` (deliver
 *   records, settle them, publish retry and dead-letter copies, report partitions assigned and
 *   revoked) and returns the engine from `subscribe`; `pull` gives it `consume`;
 * - emits and subscribes events through the `EventHub` of its `AdapterContext`.
 *
 * Prove it with the conformance suite, `mqkit/testing/conformance`.
 */

export type { AdapterFactory } from './connect.js';
export type { AdapterContext } from './core/adapter-context.js';
export { defaultAdapterContext } from './core/adapter-context.js';
export type {
  ConsumerEngineOptions,
  ConsumerTransport,
  RetryCopy,
} from './core/consumer-engine.js';
export { Claim, ConsumerEngine } from './core/consumer-engine.js';
export type { ReceivedRecord, TagFilter } from './core/dispatch.js';
export type { DeliveryEvent, EventSource, MqEventListener, MqEventName, MqEvents } from './core/events.js';
export { EventHub } from './core/events.js';
export { OffsetTracker } from './core/offset-tracker.js';
export { oneWayReporter } from './core/one-way.js';
export type { ResolvedProducerOptions, ResolvedSubscribeOptions } from './core/options.js';
export {
  groupName,
  resolveEnsureTopic,
  resolveProducerOptions,
  resolveSubscription,
  userTopicName,
} from './core/options.js';
export { partitionForKey } from './core/partitioner.js';
export { pull } from './core/pull.js';
export { SubscriptionSet } from './core/subscription-set.js';
export type { WireMessage } from './core/wire.js';
export { encodeMessage, H as HEADERS } from './core/wire.js';

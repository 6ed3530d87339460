import type { Logger } from '../../core/logger.js';
import type { Headers } from '../../core/message.js';
import { H } from '../../core/wire.js';
import type { KafkaClient, OutgoingRecord, ProducerClient, RecordPosition } from './client.js';
import { nextHop } from './delay-tiers.js';
import type { ResolvedKafkaOptions } from './options.js';
import type { TopicAdmin } from './topic-admin.js';

/** What producers and subscriptions share on one connection; implemented by `KafkaBroker`. */
export interface KafkaContext {
  readonly client: KafkaClient;
  readonly options: ResolvedKafkaOptions;
  readonly topics: TopicAdmin;
  /** The connection's producer client of this kind, created on first use and shared. */
  producerClient(idempotent: boolean): ProducerClient;
  /**
   * Sends one record with acks all through the connection's idempotent producer, coalesced with
   * other such sends (retried copies, dead letters).
   */
  publish(record: OutgoingRecord): Promise<RecordPosition>;
  /** Resolves once the delay-tier topics exist; starts this connection's forwarder if enabled. */
  prepareDelays(): Promise<void>;
  /** Starts forwarding the delay tiers in the background, if enabled. */
  startForwarder(): void;
  readonly logger: Logger;
  /** Logs a failure nobody awaits, at `warn`. */
  report(text: string): void;
}

/**
 * The first hop of a record to be delivered to `target` at `deliverAt`: into the delay tier for
 * the time that remains, with `mq-target-topic` and `mq-deliver-at` set (and `extra` headers).
 */
export function delayedRecord(
  context: KafkaContext,
  record: { key: string | undefined; value: Uint8Array; headers: Headers },
  target: string,
  deliverAt: number,
  extra: Headers = {},
): OutgoingRecord {
  const headers = { ...record.headers, ...extra, [H.targetTopic]: target, [H.deliverAt]: String(deliverAt) };
  return nextHop(
    context.options.delay.topicPrefix,
    { key: record.key, value: record.value, headers },
    target,
    deliverAt,
    Date.now(),
  );
}

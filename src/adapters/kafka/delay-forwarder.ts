import { isMqError } from '../../core/errors.js';
import { deadLetterHeaders, H } from '../../core/wire.js';
import type {
  ConsumerClient,
  ConsumerListener,
  FetchedBatch,
  FetchedRecord,
  OutgoingRecord,
  TopicPartition,
} from './client.js';
import type { KafkaContext } from './context.js';
import { DELAY_TIERS, type DelayTier, dueAt, nextHop, tierTopic, undeliverableTopic } from './delay-tiers.js';

/** How long a tier partition rests after its records could not be forwarded. */
const FAILURE_PAUSE_MS = 1000;

/**
 * Moves delayed records on: reads every delay-tier topic in the group `<prefix>.forwarder`
 * (shared by every forwarding connection on the cluster, so each tier partition has one
 * forwarder), and writes each record, once due, to its next tier or to its target topic.
 *
 * A tier partition whose head record is not due yet is paused until it is, instead of holding
 * records in memory. Offsets are committed after the forwarded copies were acknowledged, so a
 * crash forwards some records twice, never loses one (at-least-once).
 *
 * A record its next topic refuses for good (a non-retriable error, such as too large for it) is
 * written to `<prefix>.undeliverable` with the error in dead-letter headers, so it cannot hold
 * up the records behind it; retriable failures pause the partition and try again.
 */
export class DelayForwarder {
  private readonly consumer: ConsumerClient;
  private readonly tiers = new Map<string, DelayTier>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private started: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly context: KafkaContext,
    /** Called when the consumer stopped for good (kafkajs will not restart it). */
    private readonly onDead: () => void,
  ) {
    const prefix = context.options.delay.topicPrefix;
    for (const tier of DELAY_TIERS) this.tiers.set(tierTopic(prefix, tier), tier);
    const c = context.options.consumer;
    this.consumer = context.client.consumer({
      groupId: `${prefix}.forwarder`,
      topics: [...this.tiers.keys()].map((topic) => ({ topic, fromBeginning: true })),
      sessionTimeoutMs: c.sessionTimeoutMs,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      rebalanceTimeoutMs: c.rebalanceTimeoutMs,
      maxWaitTimeMs: c.maxWaitTimeMs,
      maxBytesPerPartition: c.maxBytesPerPartition,
      concurrentBatches: this.tiers.size,
    });
  }

  /** Joins the forwarders' group once the tier topics exist. Later calls share the first. */
  start(ensureTiers: () => Promise<void>): Promise<void> {
    this.started ??= (async () => {
      await ensureTiers();
      if (!this.stopped) await this.consumer.run(this.listener);
    })();
    return this.started;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.started?.catch(() => {});
    await this.consumer.stop();
  }

  private readonly listener: ConsumerListener = {
    batch: (batch) => this.forward(batch),
    assigned: () => {},
    rebalancing: () => {},
    crashed: (error, restarting) => {
      if (!restarting && !this.stopped) {
        this.context.report(
          `delay forwarder stopped: ${error.message}; the next delayed send starts another`,
        );
        this.onDead();
      }
    },
  };

  private async forward(batch: FetchedBatch): Promise<number | undefined> {
    const tier = this.tiers.get(batch.topic) as DelayTier;
    const prefix = this.context.options.delay.topicPrefix;
    const now = Date.now();
    const out: { record: FetchedRecord; hop: OutgoingRecord }[] = [];
    let last: number | undefined;
    for (const record of batch.records) {
      const due = dueAt(tier, record);
      if (due !== undefined) {
        if (due.due > now) {
          this.rest(batch, due.due - now);
          break;
        }
        out.push({ record, hop: nextHop(prefix, record, due.target, due.deliverAt, now) });
      } // else: not a delayed copy (written by someone else); skipped
      last = record.offset;
    }
    if (out.length > 0) {
      const failed = await this.send(out.map((o) => o.hop));
      // A retriable failure (an outage, say) is waited out; only a refusal for good is looked into.
      const refused = failed !== undefined && isMqError(failed) && !failed.retriable;
      if (failed !== undefined && !(refused && (await this.setAsideRefused(batch, out)))) {
        this.context.report(`delay forwarder: cannot forward from ${batch.topic}: ${failed.message}`);
        this.rest(batch, FAILURE_PAUSE_MS);
        return undefined; // fetched again after the pause
      }
    }
    if (last !== undefined) {
      const offset = last + 1;
      // A failed commit only means these records may be forwarded again.
      await this.consumer
        .commit([{ topic: batch.topic, partition: batch.partition, offset }])
        .catch(() => {});
    }
    return last;
  }

  /** Writes records with acks all; resolves the error instead of throwing. */
  private send(records: OutgoingRecord[]): Promise<Error | undefined> {
    return this.context
      .producerClient(true)
      .send(records, {
        acks: -1,
        compression: this.context.options.producer.compression,
        // kafkajs heartbeats only between batches: stay well inside the session timeout.
        timeoutMs: Math.min(
          this.context.options.client.requestTimeoutMs,
          Math.floor(this.context.options.consumer.sessionTimeoutMs / 3),
        ),
      })
      .then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      );
  }

  /**
   * After a batch failed: forwards its records one at a time, writing those refused for good to
   * the undeliverable topic. False when a retriable failure means the batch must wait and be
   * fetched again (records already forwarded then go twice: at-least-once).
   */
  private async setAsideRefused(
    batch: FetchedBatch,
    out: readonly { record: FetchedRecord; hop: OutgoingRecord }[],
  ): Promise<boolean> {
    const prefix = this.context.options.delay.topicPrefix;
    for (const { record, hop } of out) {
      const error = await this.send([hop]);
      if (error === undefined) continue;
      if (!isMqError(error) || error.retriable) return false;
      const headers = deadLetterHeaders(record.headers, error, {
        topic: record.headers[H.targetTopic] ?? hop.topic,
        group: `${prefix}.forwarder`,
        partition: batch.partition,
        offset: String(record.offset),
        attempts: 1,
      });
      const aside = undeliverableTopic(prefix);
      if (
        (await this.send([{ topic: aside, key: record.key, value: record.value, headers }])) !== undefined
      ) {
        return false;
      }
      this.context.report(
        `delay forwarder: ${hop.topic} refused a delayed record (${error.message}); set aside in ${aside}`,
      );
    }
    return true;
  }

  /** Pauses a tier partition for `ms`; its records are fetched again when it resumes. */
  private rest(tp: TopicPartition, ms: number): void {
    if (this.stopped) return;
    const partition = { topic: tp.topic, partition: tp.partition };
    this.consumer.pause([partition]);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.consumer.resume([partition]);
    }, ms);
    this.timers.add(timer);
  }
}

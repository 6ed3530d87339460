import type { ConsumerEngine, ConsumerTransport, RetryCopy } from '../../core/consumer-engine.js';
import type { ReceivedRecord } from '../../core/dispatch.js';
import { ConnectionError, isMqError, type MqError } from '../../core/errors.js';
import type { Headers } from '../../core/message.js';
import { otherTagsError, type ResolvedSubscribeOptions, tagsKey } from '../../core/options.js';
import { settlesWithin, sleep } from '../../core/timers.js';
import { H } from '../../core/wire.js';
import type {
  ConsumerClient,
  ConsumerListener,
  FetchedBatch,
  FetchedRecord,
  TopicPartition,
} from './client.js';
import { delayedRecord, type KafkaContext } from './context.js';
import { OffsetCommitter } from './offset-committer.js';
import { PartitionRun } from './partition-run.js';

interface KafkaRecord extends ReceivedRecord {
  readonly run: PartitionRun;
  readonly fetched: FetchedRecord;
}

/**
 * One member of a consumer group (broadcasting: the only member of its own group), as the
 * consumer engine's transport.
 *
 * Records of each fetched batch are handed to the engine, partitions fetched together taking
 * turns. Offsets are tracked per partition and the lowest unfinished one is committed,
 * periodically and when the group rebalances or the subscription closes, so a commit never
 * passes a message whose handler has not finished (at-least-once). A partition with `prefetch`
 * uncommittable offsets is paused until half of them are. Fetching never waits for handlers, so
 * heartbeats go on whatever handlers do and slow handlers cannot make the member leave its group.
 *
 * On a rebalance the partitions this member keeps go on where they were; a revoked partition's
 * claim is revoked at once: queued messages are dropped, running handlers' `signal` is aborted,
 * and their results are neither committed nor dead-lettered (the new owner delivers those
 * messages again). Kafka does not wait for them: a handler that goes on after the abort may
 * overlap the new owner's run of the same key, so per-key order across a partition move needs
 * handlers that stop on abort. After a crash kafkajs rejoins by itself and every partition
 * starts again from its committed offset.
 *
 * Retries: in order 'key' and 'partition' the engine retries in this process (attempts counted
 * in memory: a restart or rebalance starts again at 1). In order 'concurrent' a clustering
 * group writes a copy with `mq-attempt` to the delay tiers, aimed at `<topic>.<group>.retry`
 * (which this subscription also reads), and commits the original; a broadcasting instance
 * retries in memory.
 */
export class KafkaTransport implements ConsumerTransport<KafkaRecord> {
  readonly topic: string;
  readonly group: string;
  private consumer: ConsumerClient | undefined;
  private engine!: ConsumerEngine<KafkaRecord>;
  private readonly runs = new Map<string, PartitionRun>();
  private assignment: readonly TopicPartition[] = [];
  /** `<topic>.<group>.retry`, read too, in order 'concurrent' of a clustering group. */
  private retryTopic: string | undefined;
  /** Start offsets of partitions without a committed offset ('latest' or a timestamp). */
  private startPositions: Map<number, number> | undefined;
  private readonly seeked: (TopicPartition & { offset: number })[] = [];
  private joined = false;
  /** Runs with records taken but not yet handed to the engine. */
  private waiting: PartitionRun[] = [];
  private distributing = false;
  private failure: MqError | undefined;
  /** Aborted by `close`: ends a rejoin in progress. */
  private readonly closing = new AbortController();
  private readonly commits: OffsetCommitter;
  /** Retry copies go to the retry topic; set when there is one. */
  publishRetry?: (record: KafkaRecord, copy: RetryCopy) => Promise<void>;

  constructor(
    private readonly context: KafkaContext,
    private readonly options: ResolvedSubscribeOptions,
    private readonly onClosed: () => void,
  ) {
    this.topic = options.topic;
    this.group = options.group;
    this.commits = new OffsetCommitter({
      commit: (offsets) => (this.consumer as ConsumerClient).commit(offsets),
      runs: () => this.runs.values(),
      intervalMs: context.options.consumer.commitIntervalMs,
      committed: (run, offset) => {
        if (run.topic === this.topic) this.engine.committed(run.partition, String(offset));
      },
    });
  }

  /** Joins the group; resolves once this member has its assignment (after the rebalance it caused). */
  async start(engine: ConsumerEngine<KafkaRecord>): Promise<void> {
    this.engine = engine;
    const { context, options } = this;
    await context.topics.ensureOnce(options.topic, 1);
    if (options.mode === 'clustering') await refuseOtherTags(context, options);
    if (options.mode === 'clustering' && options.order === 'concurrent') {
      const retryTopic = `${options.topic}.${options.group}.retry`;
      await context.topics.ensureOnce(retryTopic, (await context.topics.partitionCount(options.topic)) ?? 1);
      this.retryTopic = retryTopic;
      this.publishRetry = (record, copy) => this.copyForRetry(record, copy, retryTopic);
    }
    if (options.startFrom !== 'earliest') {
      this.startPositions = await context.topics.startPositions(
        options.group,
        options.topic,
        options.startFrom,
        options.mode === 'broadcasting',
      );
    }
    const consumer = this.newConsumer();
    this.consumer = consumer;
    context.startForwarder();
    await this.join(consumer);
  }

  /** A client consumer of this subscription's group and topics (a new one per join). */
  private newConsumer(): ConsumerClient {
    const c = this.context.options.consumer;
    const options = this.options;
    return this.context.client.consumer({
      groupId: options.group,
      topics: [
        // 'latest' and timestamp starts are seeks of the partitions there are at the first join
        // (then committed); a partition added later has no commit and is read from its start,
        // or messages written to it before this member sees it would be skipped.
        { topic: options.topic, fromBeginning: true },
        ...(this.retryTopic === undefined ? [] : [{ topic: this.retryTopic, fromBeginning: true }]),
      ],
      sessionTimeoutMs: c.sessionTimeoutMs,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      rebalanceTimeoutMs: c.rebalanceTimeoutMs,
      maxWaitTimeMs: c.maxWaitTimeMs,
      maxBytesPerPartition: c.maxBytesPerPartition,
      concurrentBatches: 1,
      tags: { [options.topic]: tagsKey(options.tags) },
    });
  }

  private async join(consumer: ConsumerClient): Promise<void> {
    try {
      await consumer.run(this.listener);
    } catch (error) {
      await consumer.stop();
      throw error;
    }
    if (this.failure !== undefined || !this.joined) {
      await consumer.stop();
      throw this.failure ?? new ConnectionError(`consumer of group ${this.group} neither joined nor failed`);
    }
    // Pins 'latest' and timestamp starts in the group, so a member joining later starts there too.
    if (this.seeked.length > 0) {
      await consumer.commit(this.seeked).catch((error: MqError) => {
        this.engine.report(`start position of group ${this.group} not committed`, error);
      });
    }
    this.startPositions = undefined;
  }

  private readonly listener: ConsumerListener = {
    batch: (batch) => this.take(batch),
    assigned: (partitions) => this.assigned(partitions),
    rebalancing: () => {
      // The group accepts commits of this generation until every member rejoined.
      void this.commits.now();
    },
    crashed: (error, restarting) => this.crashed(error, restarting),
  };

  private assigned(partitions: readonly TopicPartition[]): void {
    const consumer = this.consumer as ConsumerClient;
    const keys = new Set(partitions.map(PartitionRun.key));
    for (const [key, run] of this.runs) {
      if (keys.has(key)) run.resync = true;
      else this.revoke(key, run);
    }
    if (this.startPositions !== undefined) {
      for (const tp of partitions) {
        const offset = tp.topic === this.topic ? this.startPositions.get(tp.partition) : undefined;
        if (offset === undefined || this.runs.has(PartitionRun.key(tp))) continue;
        consumer.seek({ ...tp, offset });
        this.seeked.push({ ...tp, offset });
      }
    }
    this.assignment = partitions;
    if (this.engine.isClosing) consumer.pause(partitions);
    this.joined = true;
  }

  private crashed(error: MqError, restarting: boolean): void {
    if (!this.joined) {
      this.failure = error;
      return;
    }
    // The member left the group: whoever owns the partitions next starts from the commits.
    for (const [key, run] of this.runs) this.revoke(key, run);
    if (restarting || this.engine.isClosing) return;
    if (error.retriable) void this.rejoin(error);
    else this.engine.report(`subscription to ${this.topic} (group ${this.group}) stopped`, error);
  }

  /**
   * kafkajs does not restart its consumer after some errors a broker restart causes (no group
   * coordinator found within its retries: it counts that as not retriable). This member then
   * joins again with a new consumer, after a back-off that doubles from 1 s to 30 s, until it
   * joins, a join fails for a reason that is not retriable, or the subscription closes.
   */
  private async rejoin(cause: MqError): Promise<void> {
    this.engine.report(`group ${this.group}: the consumer stopped; joining again`, cause);
    let delayMs = REJOIN_FIRST_MS;
    for (;;) {
      if (!(await sleep(delayMs, this.closing.signal))) return;
      const old = this.consumer;
      await old?.stop().catch(() => {});
      if (this.closing.signal.aborted) return;
      this.joined = false;
      this.failure = undefined;
      try {
        const consumer = this.newConsumer();
        this.consumer = consumer;
        await this.join(consumer);
        return;
      } catch (error) {
        if (this.closing.signal.aborted) return;
        const failed = toMqErrorOf(error);
        if (!failed.retriable) {
          this.engine.report(`subscription to ${this.topic} (group ${this.group}) stopped`, failed);
          return;
        }
        delayMs = Math.min(delayMs * 2, REJOIN_MAX_MS);
      }
    }
  }

  private revoke(key: string, run: PartitionRun): void {
    this.runs.delete(key);
    // Kafka has moved the partition already: nothing to wait for.
    void this.engine.revoke(run.claim, 0);
    if (run.paused) this.consumer?.resume([run]);
  }

  /** Takes a batch's records for the engine and returns the last offset taken. Never waits. */
  private take(batch: FetchedBatch): number | undefined {
    const first = batch.records[0];
    if (first === undefined || this.engine.isClosing) return undefined;
    const key = PartitionRun.key(batch);
    let run = this.runs.get(key);
    if (run?.resync) {
      run.resync = false;
      // Someone else committed past what this member took: its run is stale.
      if (first.offset > run.next) {
        this.revoke(key, run);
        run = undefined;
      }
    }
    if (run === undefined) {
      const partition = batch.topic === this.topic ? batch.partition : undefined;
      run = new PartitionRun(batch.topic, batch.partition, first.offset, this.engine.assign(key, partition));
      this.runs.set(key, run);
    }
    const before = run.pending.length;
    for (const record of batch.records) {
      if (record.offset < run.next) continue; // taken before a rejoin that kept this partition
      run.tracker.start(record.offset);
      run.next = record.offset + 1;
      run.pending.push(record);
    }
    if (before === 0 && run.pending.length > 0) this.waiting.push(run);
    if (!this.distributing) {
      this.distributing = true;
      // Batches of one fetch arrive one partition at a time, in the same turn of the event loop.
      setImmediate(this.distribute);
    }
    if (!run.paused && run.tracker.inFlight >= this.context.options.consumer.prefetch) {
      run.paused = true;
      this.consumer?.pause([run]);
    }
    return run.next - 1;
  }

  /**
   * Hands the records taken since the last call to the engine, one partition's record after
   * another's in turn, so that partitions fetched together start together. Records of revoked
   * partitions, and all records once closing, are dropped: they were never handled and are
   * delivered again.
   */
  private readonly distribute = (): void => {
    this.distributing = false;
    const runs = this.waiting;
    this.waiting = [];
    for (let i = 0, left = this.engine.isClosing ? 0 : runs.length; left > 0; i++) {
      left = 0;
      for (const run of runs) {
        const record = run.pending[i];
        if (record === undefined || run.claim.isStopped) continue;
        left++;
        this.engine.deliver(run.claim, this.received(run, record));
      }
    }
    for (const run of runs) run.pending = [];
  };

  private received(run: PartitionRun, fetched: FetchedRecord): KafkaRecord {
    const retried = run.topic === this.retryTopic;
    const headers = fetched.headers;
    return {
      run,
      fetched,
      topic: this.topic,
      payload: fetched.value,
      headers,
      key: fetched.key,
      timestamp: fetched.timestamp,
      // A retried copy reports the position of the message in the subscribed topic.
      partition: retried ? Number(headers[H.originalPartition] ?? run.partition) : run.partition,
      offset: retried
        ? (headers[H.originalOffset] ?? fetched.offsetText ?? String(fetched.offset))
        : (fetched.offsetText ?? String(fetched.offset)),
      attempt: retried ? attemptOf(fetched) : 1,
    };
  }

  settle(record: KafkaRecord, settlement: 'ack' | 'requeue'): void {
    // 'requeue': the offset stays uncommitted; the partition's next owner reads it again.
    if (settlement === 'requeue') return;
    const run = record.run;
    run.tracker.finish(record.fetched.offset);
    const prefetch = this.context.options.consumer.prefetch;
    if (
      run.paused &&
      !this.engine.isClosing &&
      !run.claim.isStopped &&
      run.tracker.inFlight <= prefetch / 2
    ) {
      run.paused = false;
      this.consumer?.resume([run]);
    }
    this.commits.schedule();
  }

  /**
   * Writes the retry copy into the delay tiers, aimed at the retry topic, with the attempt it
   * will be and the message's first produce time and position.
   */
  private async copyForRetry(record: KafkaRecord, copy: RetryCopy, retryTopic: string): Promise<void> {
    if (copy.delayMs > 0) await this.context.prepareDelays();
    const fetched = record.fetched;
    const outgoing = delayedRecord(
      this.context,
      { key: fetched.key, value: fetched.value, headers: fetched.headers },
      retryTopic,
      Date.now() + copy.delayMs,
      {
        [H.attempt]: String(copy.attempt),
        [H.timestamp]: fetched.headers[H.timestamp] ?? String(fetched.timestamp),
        [H.targetGroup]: this.group,
        [H.originalPartition]: String(record.partition),
        [H.originalOffset]: record.offset ?? String(fetched.offset),
      },
    );
    await this.context.publish(outgoing);
  }

  async publishDeadLetter(record: KafkaRecord, topic: string, headers: Headers): Promise<void> {
    await this.context.topics.ensureOnce(topic, 1);
    await this.context.publish({ topic, key: record.key, value: record.payload, headers });
  }

  stopDelivering(): void {
    this.consumer?.pause(this.assignment);
  }

  async close(timeLeftMs: number): Promise<void> {
    this.closing.abort();
    const deadline = Date.now() + timeLeftMs;
    // The final commit and leaving the group get what is left of the timeout, at least this.
    const left = () => Math.max(CLOSE_FINISH_MS, deadline - Date.now());
    const consumer = this.consumer;
    if (consumer !== undefined) {
      // kafkajs retries an unanswered commit for minutes: past the budget, close goes on.
      if (!(await settlesWithin(this.commits.last(), left()))) {
        this.engine.report(
          `group ${this.group}: final commit did not finish while closing; what finished since the last commit will be delivered again`,
        );
      }
      if (!(await settlesWithin(consumer.stop(), left()))) {
        this.engine.report(
          `group ${this.group}: the consumer did not leave the group while closing; the group rebalances once its session times out`,
        );
      }
      if (this.options.mode === 'broadcasting') {
        await this.context.client.admin.deleteGroup(this.group).catch((error: MqError) => {
          this.engine.report(`broadcast group ${this.group} not deleted`, error);
        });
      }
    }
    this.onClosed();
  }
}

/** First and longest back-off between joins again after kafkajs gave up (see `rejoin`). */
const REJOIN_FIRST_MS = 1000;
const REJOIN_MAX_MS = 30_000;

/** Least time close gives the final commit, and then leaving the group, after handlers drained. */
const CLOSE_FINISH_MS = 5000;

/** `error` as an MqError: a client's errors are MqErrors already; anything else is a retriable ConnectionError. */
function toMqErrorOf(error: unknown): MqError {
  return isMqError(error) ? error : new ConnectionError(String(error), { cause: error });
}

/** The attempt a retried copy carries (`mq-attempt`). */
function attemptOf(record: FetchedRecord): number {
  const attempt = Number(record.headers[H.attempt]);
  return Number.isInteger(attempt) && attempt > 1 ? attempt : 1;
}

/**
 * Tags are filtered in the client, each member in the partitions it owns: a member with other
 * tags would skip, and commit, messages its group's other members wanted. Refused against the
 * members running now (two members that join at the same moment are not compared).
 */
async function refuseOtherTags(context: KafkaContext, options: ResolvedSubscribeOptions): Promise<void> {
  const mine = tagsKey(options.tags);
  const running = await context.client.admin.memberTags(options.group, options.topic);
  if (running.some((tags) => tags !== mine)) throw otherTagsError(options);
}

import type { Subscription } from '../../core/broker.js';
import { dispatch, type Outcome } from '../../core/dispatch.js';
import { ConnectionError, type MqError } from '../../core/errors.js';
import { KeyedExecutor } from '../../core/keyed-executor.js';
import type { Handler } from '../../core/message.js';
import {
  backoffDelay,
  otherTagsError,
  type ResolvedSubscribeOptions,
  refuseCloseOptions,
  tagsKey,
} from '../../core/options.js';
import { settlesWithin, sleep } from '../../core/timers.js';
import { H } from '../../core/wire.js';
import type {
  ConsumerClient,
  ConsumerListener,
  FetchedBatch,
  FetchedRecord,
  TopicPartition,
} from './client.js';
import { delayedRecord, type KafkaContext } from './kafka-context.js';
import { PartitionRun } from './partition-run.js';

type RetryOutcome = Extract<Outcome, { kind: 'retry' }>;

/**
 * One member of a consumer group (broadcasting: the only member of its own group).
 *
 * Records are taken from each fetched batch into a `KeyedExecutor` of `concurrency` slots: one
 * lane per partition (order 'partition'), per key within a partition (order 'key'; records
 * without a key have none), or none ('concurrent'), partitions fetched together taking turns.
 * Offsets are tracked per partition and the lowest unfinished one is committed, periodically
 * and when the group rebalances or the subscription closes, so a commit never passes a message
 * whose handler has not finished (at-least-once). A partition with `prefetch` uncommittable
 * offsets is paused until half of them are. Fetching never waits for handlers, so heartbeats go
 * on whatever handlers do and slow handlers cannot make the member leave its group.
 *
 * On a rebalance the partitions this member keeps go on where they were; a revoked partition's
 * queued messages are dropped, its running handlers' `signal` is aborted, and their results are
 * neither committed nor dead-lettered (the new owner delivers those messages again). Kafka does
 * not wait for them: a handler that goes on after the abort may overlap the new owner's run of
 * the same key, so per-key order across a partition move needs handlers that stop on abort. After a crash kafkajs rejoins by
 * itself and every partition starts again from its committed offset.
 *
 * Retries: in order 'key' and 'partition' a failing message holds its lane (not its slot) and
 * is retried here after its back-off, uncommitted (attempts counted in memory: a restart or
 * rebalance starts again at 1). In order 'concurrent' a clustering group writes a copy with
 * `mq-attempt` to the delay tiers, aimed at `<topic>.<group>.retry` (which this subscription
 * also reads), and commits the original; a broadcasting instance retries in memory.
 */
export class KafkaSubscription implements Subscription {
  readonly topic: string;
  readonly group: string;
  private readonly consumer: ConsumerClient;
  private readonly runs = new Map<string, PartitionRun>();
  private readonly executor: KeyedExecutor;
  /** Aborts handlers' `signal` when a drain timed out. */
  private readonly shutdown = new AbortController();
  /** Aborted when close starts: queued messages are dropped, retry waits end. */
  private readonly closing = new AbortController();
  /** `closing.signal.aborted`, read on every message. */
  private isClosing = false;
  private assignment: readonly TopicPartition[] = [];
  /** Start offsets of partitions without a committed offset ('latest' or a timestamp). */
  private startPositions: Map<number, number> | undefined;
  private readonly seeked: (TopicPartition & { offset: number })[] = [];
  private joined = false;
  /** Runs with records taken but not yet handed to the executor. */
  private waiting: PartitionRun[] = [];
  private distributing = false;
  private failure: MqError | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private commitAgain = false;
  /** No more commits are scheduled (closing). */
  private stopped = false;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly context: KafkaContext,
    private readonly options: ResolvedSubscribeOptions,
    private readonly handler: Handler<unknown>,
    /** `<topic>.<group>.retry`, read too, in order 'concurrent' of a clustering group. */
    private readonly retryTopic: string | undefined,
    startPositions: Map<number, number> | undefined,
    private readonly onClosed: (subscription: KafkaSubscription) => void,
  ) {
    this.topic = options.topic;
    this.group = options.group;
    this.startPositions = startPositions;
    this.executor = new KeyedExecutor(options.concurrency);
    const c = context.options.consumer;
    this.consumer = context.client.consumer({
      groupId: options.group,
      topics: [
        // 'latest' and timestamp starts are seeks of the partitions there are at the first join
        // (then committed); a partition added later has no commit and is read from its start,
        // or messages written to it before this member sees it would be skipped.
        { topic: options.topic, fromBeginning: true },
        ...(retryTopic === undefined ? [] : [{ topic: retryTopic, fromBeginning: true }]),
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

  /** Joins the group; resolves once this member has its assignment (after the rebalance it caused). */
  static async start(
    context: KafkaContext,
    options: ResolvedSubscribeOptions,
    handler: Handler<unknown>,
    onClosed: (subscription: KafkaSubscription) => void,
  ): Promise<KafkaSubscription> {
    await context.topics.ensureOnce(options.topic, 1);
    if (options.mode === 'clustering') await refuseOtherTags(context, options);
    let retryTopic: string | undefined;
    if (options.mode === 'clustering' && options.order === 'concurrent') {
      retryTopic = `${options.topic}.${options.group}.retry`;
      await context.topics.ensureOnce(retryTopic, (await context.topics.partitionCount(options.topic)) ?? 1);
    }
    const startPositions =
      options.startFrom === 'earliest'
        ? undefined
        : await context.topics.startPositions(
            options.group,
            options.topic,
            options.startFrom,
            options.mode === 'broadcasting',
          );
    const subscription = new KafkaSubscription(
      context,
      options,
      handler,
      retryTopic,
      startPositions,
      onClosed,
    );
    context.startForwarder();
    await subscription.join();
    return subscription;
  }

  private async join(): Promise<void> {
    try {
      await this.consumer.run(this.listener);
    } catch (error) {
      await this.consumer.stop();
      throw error;
    }
    if (this.failure !== undefined || !this.joined) {
      await this.consumer.stop();
      throw this.failure ?? new ConnectionError(`consumer of group ${this.group} neither joined nor failed`);
    }
    // Pins 'latest' and timestamp starts in the group, so a member joining later starts there too.
    if (this.seeked.length > 0) {
      await this.consumer.commit(this.seeked).catch((error: MqError) => {
        this.context.report(`start position of group ${this.group} not committed: ${error.message}`);
      });
    }
    this.startPositions = undefined;
  }

  private readonly listener: ConsumerListener = {
    batch: (batch) => this.take(batch),
    assigned: (partitions) => this.assigned(partitions),
    rebalancing: () => {
      // The group accepts commits of this generation until every member rejoined.
      void this.commitNow();
    },
    crashed: (error, restarting) => this.crashed(error, restarting),
  };

  private assigned(partitions: readonly TopicPartition[]): void {
    const keys = new Set(partitions.map(PartitionRun.key));
    for (const [key, run] of this.runs) {
      if (keys.has(key)) run.resync = true;
      else this.revoke(key, run);
    }
    if (this.startPositions !== undefined) {
      for (const tp of partitions) {
        const offset = tp.topic === this.topic ? this.startPositions.get(tp.partition) : undefined;
        if (offset === undefined || this.runs.has(PartitionRun.key(tp))) continue;
        this.consumer.seek({ ...tp, offset });
        this.seeked.push({ ...tp, offset });
      }
    }
    this.assignment = partitions;
    if (this.isClosing) this.consumer.pause(partitions);
    this.joined = true;
  }

  private crashed(error: MqError, restarting: boolean): void {
    if (!this.joined) {
      this.failure = error;
      return;
    }
    // The member left the group: whoever owns the partitions next starts from the commits.
    for (const [key, run] of this.runs) this.revoke(key, run);
    if (!restarting && !this.isClosing) {
      this.context.report(`subscription to ${this.topic} (group ${this.group}) stopped: ${error.message}`);
    }
  }

  private revoke(key: string, run: PartitionRun): void {
    this.runs.delete(key);
    run.revoke();
    if (run.paused) this.consumer.resume([run]);
  }

  /** Hands a batch's records to the executor and returns the last offset taken. Never waits. */
  private take(batch: FetchedBatch): number | undefined {
    const first = batch.records[0];
    if (first === undefined || this.isClosing) return undefined;
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
      run = new PartitionRun(batch.topic, batch.partition, first.offset, this.shutdown.signal);
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
      this.consumer.pause([run]);
    }
    return run.next - 1;
  }

  /**
   * Hands the records taken since the last call to the executor, one partition's record after
   * another's in turn, so that partitions fetched together start together (the executor keeps
   * that turn order for tasks without a lane). Records of revoked partitions, and all records
   * once closing, are dropped: they were never handled and are delivered again.
   */
  private readonly distribute = (): void => {
    this.distributing = false;
    const runs = this.waiting;
    this.waiting = [];
    for (let i = 0, left = this.isClosing ? 0 : runs.length; left > 0; i++) {
      left = 0;
      for (const run of runs) {
        const record = run.pending[i];
        if (record === undefined || run.isRevoked) continue;
        left++;
        this.executor.submit(this.lane(run, record), () => this.process(run, record));
      }
    }
    for (const run of runs) run.pending = [];
  };

  private lane(run: PartitionRun, record: FetchedRecord): string | undefined {
    switch (this.options.order) {
      case 'partition':
        return run.key;
      case 'key':
        return record.key === undefined ? undefined : `${run.key}\u0000${record.key}`;
      default:
        return undefined;
    }
  }

  private async process(run: PartitionRun, record: FetchedRecord): Promise<void> {
    if (run.isRevoked || this.isClosing) return; // dropped: delivered again
    const retried = run.topic === this.retryTopic;
    // A retried copy reports the position of the message in the subscribed topic.
    const partition = retried ? Number(record.headers[H.originalPartition] ?? run.partition) : run.partition;
    const offset = retried
      ? (record.headers[H.originalOffset] ?? String(record.offset))
      : String(record.offset);
    for (;;) {
      const outcome = await dispatch(
        {
          topic: this.topic,
          payload: record.value,
          headers: record.headers,
          key: record.key,
          timestamp: record.timestamp,
          partition,
          offset,
          attempt: run.attempts.get(record.offset) ?? (retried ? attemptOf(record) : 1),
        },
        this.options,
        this.handler,
        run.signal,
      );
      // Revoked (the partition's next owner delivers it again) or given up on by close: not acknowledged.
      if (run.isRevoked || this.shutdown.signal.aborted) return;
      if (outcome.kind === 'retry') {
        run.attempts.set(record.offset, outcome.attempt);
        if (this.options.order !== 'concurrent') {
          // Hold the key (or partition) but not a concurrency slot while waiting.
          const waited = sleep(outcome.delayMs, run.revoked.signal, this.closing.signal);
          if (await this.executor.releaseWhile(waited)) continue;
          return;
        }
        const copied =
          this.retryTopic !== undefined &&
          (await this.publishRetry(record, outcome, this.retryTopic, partition, offset));
        if (!copied) {
          this.retryLater(run, record, outcome.delayMs);
          return;
        }
      } else if (outcome.kind === 'dead-letter' && outcome.topic !== undefined) {
        if (!(await this.publishDeadLetter(run, record, outcome.topic, outcome.headers))) return;
      }
      run.attempts.delete(record.offset);
      this.finish(run, record.offset);
      return;
    }
  }

  /**
   * Writes the retry copy into the delay tiers, aimed at the retry topic, with the attempt it
   * will be and the message's first produce time and position. False if that failed.
   */
  private async publishRetry(
    record: FetchedRecord,
    outcome: RetryOutcome,
    retryTopic: string,
    partition: number,
    offset: string,
  ): Promise<boolean> {
    try {
      if (outcome.delayMs > 0) await this.context.prepareDelays();
      const copy = delayedRecord(
        this.context,
        { key: record.key, value: record.value, headers: record.headers },
        retryTopic,
        Date.now() + outcome.delayMs,
        {
          [H.attempt]: String(outcome.attempt),
          [H.timestamp]: record.headers[H.timestamp] ?? String(record.timestamp),
          [H.targetGroup]: this.group,
          [H.originalPartition]: String(partition),
          [H.originalOffset]: offset,
        },
      );
      await this.context.publish(copy);
      return true;
    } catch (error) {
      this.context.report(
        `retry copy to ${retryTopic} not written, retrying in memory: ${(error as Error).message}`,
      );
      return false;
    }
  }

  /** Retries after `delayMs` without holding an executor slot; the offset stays uncommitted. */
  private retryLater(run: PartitionRun, record: FetchedRecord, delayMs: number): void {
    if (this.isClosing) return;
    const timer = setTimeout(() => {
      run.timers.delete(timer);
      if (!run.isRevoked && !this.isClosing) {
        this.executor.submit(undefined, () => this.process(run, record));
      }
    }, delayMs);
    run.timers.add(timer);
  }

  /** Writes the dead letter, trying again with back-off until written or revoked/closing. */
  private async publishDeadLetter(
    run: PartitionRun,
    record: FetchedRecord,
    topic: string,
    headers: Record<string, string>,
  ): Promise<boolean> {
    for (let failures = 1; ; failures++) {
      try {
        await this.context.topics.ensureOnce(topic, 1);
        await this.context.publish({ topic, key: record.key, value: record.value, headers });
        return true;
      } catch (error) {
        this.context.report(`dead letter to ${topic} not written, trying again: ${(error as Error).message}`);
        const wait = backoffDelay(this.options.retry, failures);
        const waited = sleep(wait, run.revoked.signal, this.closing.signal);
        if (!(await this.executor.releaseWhile(waited))) return false;
      }
    }
  }

  private finish(run: PartitionRun, offset: number): void {
    run.tracker.finish(offset);
    const prefetch = this.context.options.consumer.prefetch;
    if (run.paused && !this.isClosing && run.tracker.inFlight <= prefetch / 2) {
      run.paused = false;
      this.consumer.resume([run]);
    }
    this.scheduleCommit();
  }

  private scheduleCommit(): void {
    if (this.stopped) return;
    if (this.committing !== undefined) {
      this.commitAgain = true;
      return;
    }
    if (this.commitTimer !== undefined) return;
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined;
      void this.commitNow();
    }, this.context.options.consumer.commitIntervalMs);
  }

  /** Commits, for every owned partition, the lowest offset not finished yet, if it moved. */
  private commitNow(): Promise<void> {
    if (this.committing !== undefined) {
      this.commitAgain = true;
      return this.committing;
    }
    const runs: PartitionRun[] = [];
    const offsets: (TopicPartition & { offset: number })[] = [];
    for (const run of this.runs.values()) {
      const offset = run.tracker.committable();
      if (offset > run.committed) {
        runs.push(run);
        offsets.push({ topic: run.topic, partition: run.partition, offset });
      }
    }
    if (offsets.length === 0) return Promise.resolve();
    this.committing = this.consumer
      .commit(offsets)
      .then(
        () => {
          offsets.forEach(({ offset }, i) => {
            const run = runs[i] as PartitionRun;
            if (run.committed < offset) run.committed = offset;
          });
        },
        // Not committed this time (a rebalance, a restart): the next commit includes these offsets.
        () => {
          this.commitAgain = true;
        },
      )
      .finally(() => {
        this.committing = undefined;
        if (this.commitAgain) {
          this.commitAgain = false;
          this.scheduleCommit();
        }
      });
    return this.committing;
  }

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const refused = refuseCloseOptions(options);
    if (refused) return refused;
    this.closed ??= (async () => {
      const timeoutMs = options.timeoutMs ?? this.options.closeTimeoutMs;
      const deadline = Date.now() + timeoutMs;
      // The final commit and leaving the group get what is left of the timeout, at least this.
      const left = () => Math.max(CLOSE_FINISH_MS, deadline - Date.now());
      this.isClosing = true;
      this.closing.abort();
      for (const run of this.runs.values()) {
        for (const timer of run.timers) clearTimeout(timer);
        run.timers.clear();
      }
      this.consumer.pause(this.assignment);
      if (!(await settlesWithin(this.executor.onIdle(), timeoutMs))) this.shutdown.abort();
      this.stopped = true;
      clearTimeout(this.commitTimer);
      // kafkajs retries an unanswered commit for minutes: past the budget, close goes on.
      const finalCommit = (this.committing ?? Promise.resolve()).then(() => this.commitNow());
      if (!(await settlesWithin(finalCommit, left()))) {
        this.context.report(
          `group ${this.group}: final commit did not finish while closing; what finished since the last commit will be delivered again`,
        );
      }
      if (!(await settlesWithin(this.consumer.stop(), left()))) {
        this.context.report(
          `group ${this.group}: the consumer did not leave the group while closing; the group rebalances once its session times out`,
        );
      }
      if (this.options.mode === 'broadcasting') {
        await this.context.client.admin.deleteGroup(this.group).catch((error: MqError) => {
          this.context.report(`broadcast group ${this.group} not deleted: ${error.message}`);
        });
      }
      this.onClosed(this);
    })();
    return this.closed;
  }
}

/** Least time close gives the final commit, and then leaving the group, after handlers drained. */
const CLOSE_FINISH_MS = 5000;

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

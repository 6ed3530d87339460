import type { Subscription } from '../../core/broker.js';
import { dispatch, type Outcome } from '../../core/dispatch.js';
import { KeyedExecutor } from '../../core/keyed-executor.js';
import type { Handler } from '../../core/message.js';
import { OffsetTracker } from '../../core/offset-tracker.js';
import { type ResolvedSubscribeOptions, refuseCloseOptions } from '../../core/options.js';
import { settlesWithin, sleep } from '../../core/timers.js';
import { H } from '../../core/wire.js';
import type { MemoryGroup } from './memory-group.js';
import type { MemoryState } from './memory-state.js';
import type { StoredRecord } from './partition-log.js';

/** This member's hold on one partition. */
interface PartitionRun {
  readonly partition: number;
  readonly tracker: OffsetTracker;
  /** Next offset to hand to the executor. */
  cursor: number;
  /** Handlers running now (retries waiting on a timer are not counted). */
  running: number;
  /** Aborted on revoke or close: retry waits end, their messages stay uncommitted. */
  readonly stop: AbortController;
  /** The handlers' `signal`: aborted when a revoke or close gave up waiting for them. */
  readonly abandon: AbortController;
  readonly timers: Set<NodeJS.Timeout>;
  idle: (() => void) | undefined;
}

function attemptKey(run: PartitionRun, record: StoredRecord): string {
  return `${run.partition}:${record.offset}`;
}

/** One member of a group: pulls records of its partitions through a keyed executor. */
export class MemorySubscription implements Subscription {
  readonly topic: string;
  readonly group: string;
  /** The tags this member subscribed to (undefined: all); its group's members must agree. */
  readonly tags: ReadonlySet<string> | undefined;
  private readonly owned = new Map<number, PartitionRun>();
  private readonly executor: KeyedExecutor;
  private readonly prefetch: number;
  /** Aborted when close starts: retry waits end early and leave their messages uncommitted. */
  private readonly closing = new AbortController();
  private pumpScheduled = false;
  private closed: Promise<void> | undefined;
  /** How long a revoke waits for running handlers; close lowers it to what its timeout left. */
  private revokeTimeoutMs: number;

  constructor(
    private readonly state: MemoryState,
    private readonly memoryGroup: MemoryGroup,
    private readonly options: ResolvedSubscribeOptions,
    private readonly handler: Handler<unknown>,
    private readonly onClosed: (s: MemorySubscription) => void,
  ) {
    this.topic = options.topic;
    this.group = options.group;
    this.tags = options.tags;
    this.executor = new KeyedExecutor(options.concurrency);
    this.prefetch = Math.max(64, options.concurrency * 4);
    this.revokeTimeoutMs = options.closeTimeoutMs;
  }

  assign(partition: number, from: number): void {
    if (this.closed !== undefined) return;
    this.owned.set(partition, {
      partition,
      tracker: new OffsetTracker(from),
      cursor: from,
      running: 0,
      stop: new AbortController(),
      abandon: new AbortController(),
      timers: new Set(),
      idle: undefined,
    });
    this.wake();
  }

  /** Stops reading `partition` and resolves when its running handlers finished (bounded). */
  async revoke(partition: number): Promise<void> {
    const run = this.owned.get(partition);
    if (run === undefined) return;
    this.owned.delete(partition);
    run.stop.abort();
    for (const timer of run.timers) clearTimeout(timer);
    if (run.running > 0) {
      const idle = new Promise<void>((resolve) => {
        run.idle = resolve;
      });
      if (!(await settlesWithin(idle, this.revokeTimeoutMs))) run.abandon.abort();
    }
  }

  wake(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(this.pump);
  }

  private readonly pump = (): void => {
    this.pumpScheduled = false;
    if (this.closed !== undefined) return;
    const topic = this.memoryGroup.topic;
    // A share of the prefetch per partition, so one busy partition cannot fill it and starve
    // the others (with order 'partition' that would serialise the whole subscription).
    const perPartition = Math.max(8, Math.ceil(this.prefetch / Math.max(1, this.owned.size)));
    let progressed = true;
    while (progressed && this.executor.size < this.prefetch) {
      progressed = false;
      for (const run of this.owned.values()) {
        const log = topic.partitions[run.partition];
        if (log === undefined || run.cursor >= log.end || run.tracker.inFlight >= perPartition) continue;
        if (run.cursor < log.start) run.cursor = log.start; // released under us: retention won
        const record = log.get(run.cursor) as StoredRecord;
        run.cursor++;
        run.tracker.start(record.offset);
        this.submit(run, record);
        progressed = true;
        if (this.executor.size >= this.prefetch) break;
      }
    }
  };

  private lane(run: PartitionRun, record: StoredRecord): string | undefined {
    switch (this.options.order) {
      case 'partition':
        return String(run.partition);
      case 'key':
        return record.key === undefined ? undefined : `${run.partition}:${record.key}`;
      default:
        return undefined;
    }
  }

  private submit(run: PartitionRun, record: StoredRecord): void {
    this.executor.submit(this.lane(run, record), () => this.process(run, record));
  }

  private async process(run: PartitionRun, record: StoredRecord): Promise<void> {
    run.running++;
    try {
      // Attempt keys are built only while some retry is pending: most messages never need one.
      const attempts = this.memoryGroup.attempts;
      for (;;) {
        // Revoked or closing: leave it uncommitted for the next owner.
        if (run.stop.signal.aborted || this.closing.signal.aborted) return;
        const outcome: Outcome = await dispatch(
          {
            topic: this.topic,
            payload: record.payload,
            headers: record.headers,
            key: record.key,
            timestamp: record.timestamp,
            partition: run.partition,
            offset: String(record.offset),
            attempt: attempts.size === 0 ? 1 : (attempts.get(attemptKey(run, record)) ?? 1),
          },
          this.options,
          this.handler,
          run.abandon.signal,
        );
        // Given up on (revoke or close timed out): not acknowledged, the next owner redelivers.
        if (run.abandon.signal.aborted) return;
        if (outcome.kind === 'retry') {
          attempts.set(attemptKey(run, record), outcome.attempt);
          if (this.options.order === 'concurrent') {
            // Free the slot while waiting, so other messages keep flowing.
            const timer = setTimeout(() => {
              run.timers.delete(timer);
              if (!run.stop.signal.aborted && !this.closing.signal.aborted) this.submit(run, record);
            }, outcome.delayMs);
            run.timers.add(timer);
            return;
          }
          // Ordered: hold the key (or partition) but not a concurrency slot while waiting.
          const waited = sleep(outcome.delayMs, run.stop.signal, this.closing.signal);
          if (!(await this.executor.releaseWhile(waited))) return;
          continue;
        }
        if (outcome.kind === 'dead-letter' && outcome.topic !== undefined) {
          this.state.append(
            {
              topic: outcome.topic,
              id: record.headers[H.id] ?? '',
              key: record.key,
              tag: undefined,
              headers: outcome.headers,
              payload: record.payload,
              delayMs: 0,
            },
            outcome.headers,
          );
        }
        if (attempts.size > 0) attempts.delete(attemptKey(run, record));
        run.tracker.finish(record.offset);
        this.memoryGroup.commit(run.partition, run.tracker.committable());
        return;
      }
    } finally {
      run.running--;
      if (run.running === 0) run.idle?.();
      this.wake();
    }
  }

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const refused = refuseCloseOptions(options);
    if (refused) return refused;
    this.closed ??= (async () => {
      const timeoutMs = options.timeoutMs ?? this.options.closeTimeoutMs;
      this.closing.abort();
      for (const run of this.owned.values()) for (const timer of run.timers) clearTimeout(timer);
      const deadline = Date.now() + timeoutMs;
      const drained = await settlesWithin(this.executor.onIdle(), timeoutMs);
      this.revokeTimeoutMs = drained ? Math.max(0, deadline - Date.now()) : 0;
      await this.memoryGroup.leave(this);
      this.onClosed(this);
    })();
    return this.closed;
  }
}

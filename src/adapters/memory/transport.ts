import type { Claim, ConsumerEngine, ConsumerTransport } from '../../core/consumer-engine.js';
import type { ReceivedRecord } from '../../core/dispatch.js';
import type { Headers } from '../../core/message.js';
import { OffsetTracker } from '../../core/offset-tracker.js';
import type { ResolvedSubscribeOptions } from '../../core/options.js';
import { H } from '../../core/wire.js';
import type { MemoryGroup } from './group.js';
import { headersOf, type StoredRecord } from './partition-log.js';
import type { MemoryState } from './state.js';

/** This member's hold on one partition. */
interface PartitionRun {
  readonly partition: number;
  readonly claim: Claim;
  readonly tracker: OffsetTracker;
  /** Next offset to hand to the engine. */
  cursor: number;
}

interface MemoryRecord extends ReceivedRecord {
  readonly run: PartitionRun;
  readonly stored: StoredRecord;
}

/**
 * One member of a group, as the consumer engine's transport: it reads the records of the
 * partitions its group gives it, a bounded number ahead, and commits the lowest unfinished
 * offset of a partition as records are settled.
 */
export class MemoryTransport implements ConsumerTransport<MemoryRecord> {
  readonly topic: string;
  readonly group: string;
  /** The tags this member subscribed to (undefined: all); its group's members must agree. */
  readonly tags: ReadonlySet<string> | undefined;
  private readonly owned = new Map<number, PartitionRun>();
  private engine: ConsumerEngine<MemoryRecord> | undefined;
  private prefetch: number;
  /** The share of `prefetch` one partition may hold, as the last pump computed it. */
  private perPartition: number;
  private pumpScheduled = false;

  constructor(
    private readonly state: MemoryState,
    private readonly memoryGroup: MemoryGroup,
    private readonly options: ResolvedSubscribeOptions,
    private readonly onClosed: (s: MemoryTransport) => void,
  ) {
    this.topic = options.topic;
    this.group = options.group;
    this.tags = options.tags;
    this.prefetch = prefetchFor(options, options.concurrency);
    this.perPartition = this.prefetch;
  }

  concurrencyChanged(concurrency: number): void {
    this.prefetch = prefetchFor(this.options, concurrency);
    this.wake();
  }

  async start(engine: ConsumerEngine<MemoryRecord>): Promise<void> {
    this.engine = engine;
    this.memoryGroup.join(this);
  }

  assign(partition: number, from: number): void {
    const engine = this.engine;
    if (engine === undefined || engine.isClosing) return;
    const claim = engine.assign(String(partition), partition);
    this.owned.set(partition, { partition, claim, tracker: new OffsetTracker(from), cursor: from });
    this.wake();
  }

  /** Stops reading `partition` and resolves when its running handlers finished (bounded). */
  async revoke(partition: number): Promise<void> {
    const run = this.owned.get(partition);
    if (run === undefined) return;
    this.owned.delete(partition);
    await this.engine?.revoke(run.claim);
  }

  wake(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // Not queueMicrotask: it makes an AsyncResource per call, and this runs for every append.
    RESOLVED.then(this.pump);
  }

  private readonly pump = (): void => {
    this.pumpScheduled = false;
    const engine = this.engine;
    if (engine === undefined || engine.isClosing) return;
    const topic = this.memoryGroup.topic;
    // A share of the prefetch per partition, so one busy partition cannot fill it and starve
    // the others (with order 'partition' that would serialise the whole subscription).
    const perPartition = Math.max(8, Math.ceil(this.prefetch / Math.max(1, this.owned.size)));
    this.perPartition = perPartition;
    // Every partition may hold its share, whatever the others hold: partitions whose records
    // wait out a retry's back-off must not starve the healthy ones.
    const limit = Math.max(this.prefetch, perPartition * this.owned.size);
    const attempts = this.memoryGroup.attempts;
    let progressed = true;
    while (progressed && engine.inFlight < limit) {
      progressed = false;
      for (const run of this.owned.values()) {
        const log = topic.partitions[run.partition];
        if (log === undefined || run.cursor >= log.end || run.tracker.inFlight >= perPartition) continue;
        if (run.cursor < log.start) run.cursor = log.start; // released under us: retention won
        const stored = log.get(run.cursor) as StoredRecord;
        run.cursor++;
        run.tracker.start(stored.offset);
        // Attempt keys are looked up only while some retry is pending: most messages never need one.
        engine.deliver(run.claim, {
          run,
          stored,
          topic: this.topic,
          payload: stored.payload,
          headers: headersOf(stored),
          key: stored.key,
          timestamp: stored.timestamp,
          partition: run.partition,
          offset: String(stored.offset),
          attempt: attempts.size === 0 ? 1 : (attempts.get(attemptKey(run, stored)) ?? 1),
        });
        progressed = true;
        if (engine.inFlight >= limit) break;
      }
    }
  };

  settle(record: MemoryRecord, settlement: 'ack' | 'requeue'): void {
    if (settlement === 'ack') {
      const { run, stored } = record;
      const attempts = this.memoryGroup.attempts;
      if (attempts.size > 0) attempts.delete(attemptKey(run, stored));
      run.tracker.finish(stored.offset);
      const before = this.memoryGroup.committed(run.partition);
      const position = run.tracker.committable();
      this.memoryGroup.commit(run.partition, position);
      // The `committed` event its contract promises for memory too (free without listeners:
      // the engine makes the offset's string only when one listens).
      if (position !== before) this.engine?.committed(run.partition, position);
    }
    // 'requeue': left uncommitted; the partition's next owner reads it again.
    // Refill once half of a limit is free rather than after every record: one pump then hands
    // over many records, and the engine still has half a prefetch to work on meanwhile.
    const engine = this.engine as ConsumerEngine<MemoryRecord>;
    if (engine.inFlight <= this.prefetch >> 1 || record.run.tracker.inFlight <= this.perPartition >> 1)
      this.wake();
  }

  retrying(record: MemoryRecord, attempt: number): void {
    this.memoryGroup.attempts.set(attemptKey(record.run, record.stored), attempt);
  }

  async publishDeadLetter(record: MemoryRecord, topic: string, headers: Headers): Promise<void> {
    this.state.append(
      {
        topic,
        id: record.headers[H.id] ?? '',
        key: record.key,
        tag: undefined,
        headers,
        payload: record.payload,
        delayMs: 0,
      },
      headers,
    );
  }

  stopDelivering(): void {}

  async close(): Promise<void> {
    await this.memoryGroup.leave(this);
    this.onClosed(this);
  }
}

/** Records read ahead of the handlers: enough to keep every slot (and batch) busy. */
function prefetchFor(options: ResolvedSubscribeOptions, concurrency: number): number {
  return Math.max(64, concurrency * 4 * (options.batch?.maxSize ?? 1));
}

const RESOLVED = Promise.resolve();

/** Key of a message's attempt count in its group: survives a handover to another member. */
function attemptKey(run: PartitionRun, record: StoredRecord): string {
  return `${run.partition}:${record.offset}`;
}

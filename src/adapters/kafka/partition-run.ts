import { OffsetTracker } from '../../core/offset-tracker.js';
import type { FetchedRecord, TopicPartition } from './client.js';

/**
 * A subscription's hold on one assigned partition, from the first batch after it was assigned
 * until it is revoked: which offsets were taken, which finished, what was committed.
 */
export class PartitionRun implements TopicPartition {
  /** `PartitionRun.key` of this partition, also its executor lane in order 'partition'. */
  readonly key: string;
  readonly tracker: OffsetTracker;
  /** The next offset not taken yet. */
  next: number;
  /** Records taken and not yet handed to the executor. */
  pending: FetchedRecord[] = [];
  /** The last offset committed (the next to read after a restart). */
  committed: number;
  /** Deliveries so far of messages retried in this process, by offset. Lost with the run. */
  readonly attempts = new Map<number, number>();
  /** Set on revoke: queued messages are dropped, retry waits end, nothing more is committed. */
  isRevoked = false;
  /** Aborted on revoke, to end retry waits. */
  readonly revoked = new AbortController();
  /** Handlers' `signal`: aborted on revoke (the next owner delivers the message again) or by `shutdown`. */
  readonly signal: AbortSignal;
  /** Retries waiting on a timer (order 'concurrent' without a retry topic). */
  readonly timers = new Set<NodeJS.Timeout>();
  /** Fetching is paused because `prefetch` offsets are not committable yet. */
  paused = false;
  /** The group rejoined and kept this partition: the client fetches again from the committed offset. */
  resync = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
    start: number,
    shutdown: AbortSignal,
  ) {
    this.key = PartitionRun.key(this);
    this.signal = AbortSignal.any([shutdown, this.revoked.signal]);
    this.tracker = new OffsetTracker(start);
    this.next = start;
    this.committed = start;
  }

  static key(tp: TopicPartition): string {
    return `${tp.partition}:${tp.topic}`;
  }

  revoke(): void {
    this.isRevoked = true;
    this.revoked.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

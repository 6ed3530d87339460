import type { Claim } from '../../core/consumer-engine.js';
import { OffsetTracker } from '../../core/offset-tracker.js';
import type { FetchedRecord, TopicPartition } from './client.js';

/**
 * A subscription's hold on one assigned partition, from the first batch after it was assigned
 * until it is revoked: which offsets were taken, which finished, what was committed.
 */
export class PartitionRun implements TopicPartition {
  /** `PartitionRun.key` of this partition, also its claim id. */
  readonly key: string;
  readonly tracker: OffsetTracker;
  /** The next offset not taken yet. */
  next: number;
  /** Records taken and not yet handed to the engine. */
  pending: FetchedRecord[] = [];
  /** The last offset committed (the next to read after a restart). */
  committed: number;
  /** Fetching is paused because `prefetch` offsets are not committable yet. */
  paused = false;
  /** The group rejoined and kept this partition: the client fetches again from the committed offset. */
  resync = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
    start: number,
    /** The engine's view of this partition; stopped on revoke. */
    readonly claim: Claim,
  ) {
    this.key = PartitionRun.key(this);
    this.tracker = new OffsetTracker(start);
    this.next = start;
    this.committed = start;
  }

  static key(tp: TopicPartition): string {
    return `${tp.partition}:${tp.topic}`;
  }
}

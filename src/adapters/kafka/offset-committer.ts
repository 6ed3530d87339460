import type { TopicPartition } from './client.js';
import type { PartitionRun } from './partition-run.js';

/**
 * Commits a member's positions: for every partition it holds, the lowest offset not finished
 * yet, when it moved. Commits are batched (at most one every `intervalMs` while records
 * finish), never two at once, and a failed one is folded into the next (a rebalance or a
 * restart refuses commits for a while).
 */
export class OffsetCommitter {
  private timer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly options: {
      commit: (offsets: readonly (TopicPartition & { offset: number })[]) => Promise<void>;
      /** The partitions held now. */
      runs: () => Iterable<PartitionRun>;
      intervalMs: number;
      /** Told of each position the group stored. */
      committed: (run: PartitionRun, offset: number) => void;
    },
  ) {}

  /** A record finished: commit within `intervalMs`. */
  schedule(): void {
    if (this.stopped) return;
    if (this.committing !== undefined) {
      this.again = true;
      return;
    }
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.now();
    }, this.options.intervalMs);
  }

  /** Commits now (or after the commit in flight). */
  now(): Promise<void> {
    if (this.committing !== undefined) {
      this.again = true;
      return this.committing;
    }
    const runs: PartitionRun[] = [];
    const offsets: (TopicPartition & { offset: number })[] = [];
    for (const run of this.options.runs()) {
      const offset = run.tracker.committable();
      if (offset > run.committed) {
        runs.push(run);
        offsets.push({ topic: run.topic, partition: run.partition, offset });
      }
    }
    if (offsets.length === 0) return Promise.resolve();
    this.committing = this.options
      .commit(offsets)
      .then(
        () => {
          offsets.forEach(({ offset }, i) => {
            const run = runs[i] as PartitionRun;
            if (run.committed < offset) run.committed = offset;
            this.options.committed(run, offset);
          });
        },
        // Not committed this time (a rebalance, a restart): the next commit includes these offsets.
        () => {
          this.again = true;
        },
      )
      .finally(() => {
        this.committing = undefined;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
    return this.committing;
  }

  /** Closing: schedules nothing more, and commits once more after the commit in flight. */
  last(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    return (this.committing ?? Promise.resolve()).then(() => this.now());
  }
}

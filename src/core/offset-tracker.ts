/**
 * Tracks offsets handed to handlers on one partition, which may finish out of order, and gives
 * the offset that is safe to commit: the lowest one not finished yet (or one past the highest
 * started). Committing it never skips an unfinished message, which is what keeps at-least-once.
 */
export class OffsetTracker {
  private started: number[] = [];
  private head = 0;
  private readonly finished = new Set<number>();
  private next: number;

  constructor(start: number) {
    this.next = start;
  }

  /** Offsets must be started in increasing order. */
  start(offset: number): void {
    this.started.push(offset);
    this.next = offset + 1;
  }

  /** Marks an offset finished (acknowledged, dead-lettered or filtered). */
  finish(offset: number): void {
    if (this.started[this.head] === offset) {
      this.head++;
      while (this.head < this.started.length && this.finished.delete(this.started[this.head] as number))
        this.head++;
      if (this.head === this.started.length) {
        this.started.length = 0;
        this.head = 0;
      } else if (this.head > 4096) {
        this.started = this.started.slice(this.head); // not splice: it would copy out the dead part
        this.head = 0;
      }
    } else {
      this.finished.add(offset);
    }
  }

  /** Offsets started and not yet finished. */
  get inFlight(): number {
    return this.started.length - this.head;
  }

  /** The position to commit: the next offset the group should read after a restart. */
  committable(): number {
    return this.head < this.started.length ? (this.started[this.head] as number) : this.next;
  }
}

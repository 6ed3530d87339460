import type { OutgoingRecord, RecordPosition } from './client.js';

/** Records that go in one request together, with who waits for them. */
interface Group {
  records: readonly OutgoingRecord[];
  resolve: (positions: RecordPosition[]) => void;
  reject: (error: unknown) => void;
}

export interface SendQueueOptions {
  /** How long the first queued group waits for company; 0 = until the end of this tick. */
  lingerMs: number;
  /** Most records per request, unless a single group is larger. */
  batchSize: number;
  /** Requests at once; groups queued meanwhile go together in the next one. */
  maxInFlight: number;
}

/**
 * Coalesces sends into few produce requests: groups queued in the same tick (or within
 * `lingerMs`), and all groups queued while `maxInFlight` requests are in flight, share one
 * request, up to `batchSize` records. A group is never split. Records keep their queue order
 * within a request, so per-key order of sends made one after another is kept; a failed request
 * fails every group in it.
 */
export class SendQueue {
  private pending: Group[] = [];
  private pendingRecords = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private idle: (() => void)[] = [];

  constructor(
    private readonly send: (records: readonly OutgoingRecord[]) => Promise<RecordPosition[]>,
    private readonly options: SendQueueOptions,
  ) {}

  /** Sends one record. */
  async push(record: OutgoingRecord): Promise<RecordPosition> {
    return (await this.pushGroup([record]))[0] as RecordPosition;
  }

  /** Sends records in one request (with other groups, perhaps); resolves with their positions. */
  pushGroup(records: readonly OutgoingRecord[]): Promise<RecordPosition[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ records, resolve, reject });
      this.pendingRecords += records.length;
      if (this.pendingRecords >= this.options.batchSize) this.flush();
      else this.schedule();
    });
  }

  /** Resolves when nothing is queued or in flight. */
  drained(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    if (this.timer !== undefined || this.inFlight >= this.options.maxInFlight) return;
    this.timer =
      this.options.lingerMs === 0
        ? setImmediate(this.onTimer)
        : setTimeout(this.onTimer, this.options.lingerMs);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flush();
  };

  private flush(): void {
    while (this.pending.length > 0 && this.inFlight < this.options.maxInFlight) {
      let take = 0;
      let count = 0;
      while (take < this.pending.length) {
        const size = (this.pending[take] as Group).records.length;
        if (take > 0 && count + size > this.options.batchSize) break;
        count += size;
        take++;
      }
      const groups = take === this.pending.length ? this.pending : this.pending.slice(0, take);
      this.pending = take === this.pending.length ? [] : this.pending.slice(take);
      this.pendingRecords -= count;
      const records = groups.length === 1 ? (groups[0] as Group).records : groups.flatMap((g) => g.records);
      this.inFlight++;
      this.send(records).then(
        (positions) => {
          let at = 0;
          for (const group of groups) {
            group.resolve(positions.slice(at, at + group.records.length));
            at += group.records.length;
          }
          this.settled();
        },
        (error: unknown) => {
          for (const group of groups) group.reject(error);
          this.settled();
        },
      );
    }
  }

  private settled(): void {
    this.inFlight--;
    // Groups queued while this request was in flight have waited long enough.
    if (this.pending.length > 0) this.flush();
    else if (this.inFlight === 0 && this.idle.length > 0) {
      const waiting = this.idle;
      this.idle = [];
      for (const resolve of waiting) resolve();
    }
  }
}

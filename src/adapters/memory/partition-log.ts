import type { Headers } from '../../core/message.js';

export interface StoredRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key: string | undefined;
  headers: Headers;
  payload: Uint8Array;
}

/**
 * One partition's retained log. Offsets only grow; released records keep their offsets so
 * positions stay valid. `records[head]` holds offset `start`.
 */
export class PartitionLog {
  constructor(readonly partition: number) {}

  private records: (StoredRecord | undefined)[] = [];
  private head = 0;
  private startOffset = 0;
  private lastTimestamp = 0;

  get start(): number {
    return this.startOffset;
  }

  get end(): number {
    return this.startOffset + this.records.length - this.head;
  }

  get size(): number {
    return this.records.length - this.head;
  }

  append(key: string | undefined, headers: Headers, payload: Uint8Array, now = Date.now()): StoredRecord {
    // Timestamps never go backwards inside a partition, so replay-by-time can binary search.
    this.lastTimestamp = Math.max(now, this.lastTimestamp);
    const record: StoredRecord = {
      partition: this.partition,
      offset: this.end,
      timestamp: this.lastTimestamp,
      key,
      headers,
      payload,
    };
    this.records.push(record);
    return record;
  }

  get(offset: number): StoredRecord | undefined {
    if (offset < this.startOffset) return undefined;
    return this.records[this.head + offset - this.startOffset];
  }

  /** First retained offset whose timestamp is >= `timestamp` (the end offset if none). */
  offsetForTimestamp(timestamp: number): number {
    let lo = this.head;
    let hi = this.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.records[mid] as StoredRecord).timestamp < timestamp) lo = mid + 1;
      else hi = mid;
    }
    return this.startOffset + lo - this.head;
  }

  /** Drops records below `offset` so their memory can be reclaimed. */
  releaseBefore(offset: number): void {
    const count = Math.min(offset, this.end) - this.startOffset;
    if (count <= 0) return;
    this.records.fill(undefined, this.head, this.head + count);
    this.head += count;
    this.startOffset += count;
    if (this.head > 1024 && this.head * 2 > this.records.length) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }
}

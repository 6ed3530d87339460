import type { ClaimResult, IdempotencyStore } from './store.js';

interface Entry {
  token: string | undefined; // undefined once done
  expiresAt: number;
}

/**
 * In-process store: for one consumer process, tests, and the embedded broker. Bounded: beyond
 * `maxEntries` the oldest entries are forgotten (a very late duplicate may then run again).
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries = 100_000) {}

  async claim(key: string, token: string, leaseMs: number): Promise<ClaimResult> {
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) return entry.token === undefined ? 'done' : 'busy';
    this.set(key, { token, expiresAt: now + leaseMs });
    return 'claimed';
  }

  async complete(key: string, token: string, ttlMs: number): Promise<boolean> {
    const entry = this.entries.get(key);
    // Another token, live or expired, means another delivery claimed it after our lease ran out.
    const held = entry === undefined || entry.token === token;
    this.set(key, { token: undefined, expiresAt: Date.now() + ttlMs });
    return held;
  }

  async release(key: string, token: string): Promise<void> {
    if (this.entries.get(key)?.token === token) this.entries.delete(key);
  }

  private set(key: string, entry: Entry): void {
    this.entries.delete(key); // re-insert: Map order is then age order
    this.entries.set(key, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

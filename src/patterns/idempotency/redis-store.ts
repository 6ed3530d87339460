import type { ClaimResult, IdempotencyStore } from './store.js';

/**
 * The Redis commands {@link RedisIdempotencyStore} sends, typed as it sends them. An ioredis
 * `Redis` (or `Cluster`) instance satisfies it with no cast; ioredis is an optional peer, so
 * mqkit's declarations describe the client rather than import it.
 */
export interface RedisLike {
  /** `EVAL script numkeys key [key ...] arg [arg ...]`. */
  eval(script: string, numkeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** `SET key value PX milliseconds GET` (Redis 6.2+): the previous value, null if none. */
  set(key: string, value: string, px: 'PX', milliseconds: number, get: 'GET'): Promise<string | null>;
}

// One round trip: claim with SET NX PX, else report whether the key is done or leased.
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == 'done' then return 2 end
return 0`;
// Delete only our own lease, never a completed key or another consumer's lease.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * The "weak" check (the seed's Redis key): a lease with SET NX PX, then the key set to 'done'
 * with a TTL. Two round trips per message (claim, complete); give it an ioredis client with
 * `enableAutoPipelining: true` and concurrent handlers share round trips.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: RedisLike,
    private readonly prefix = 'mqkit:idem:',
  ) {}

  async claim(key: string, token: string, leaseMs: number): Promise<ClaimResult> {
    const result = (await this.redis.eval(CLAIM, 1, this.prefix + key, token, String(leaseMs))) as number;
    return result === 1 ? 'claimed' : result === 2 ? 'done' : 'busy';
  }

  /**
   * One SET ... GET (Redis 6.2+): marks done whoever holds the key and reads what it held. A
   * key that expired entirely counts as still ours: whether another delivery claimed it and
   * its lease expired too cannot be told, so `onLeaseLost` may under-report.
   */
  async complete(key: string, token: string, ttlMs: number): Promise<boolean> {
    const previous = await this.redis.set(this.prefix + key, 'done', 'PX', ttlMs, 'GET');
    return previous === null || previous === token;
  }

  async release(key: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.prefix + key, token);
  }
}

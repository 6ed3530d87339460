/** Result of trying to claim a message for processing. */
export type ClaimResult =
  /** This caller holds the lease: run the effect, then `complete` or `release`. */
  | 'claimed'
  /** The effect already happened: acknowledge without running it again. */
  | 'done'
  /** Another consumer holds a live lease on the same key right now. */
  | 'busy';

/**
 * Where an idempotent consumer records which messages it has processed.
 *
 * A claim is a lease: if the claimer crashes before `complete`, the lease expires and a later
 * delivery claims it again. `complete` and the effect are NOT atomic for lease-based stores
 * (memory, Redis): a crash between the effect and `complete` lets a redelivery repeat the
 * effect once the lease expires. Use the PostgreSQL transactional consumer where that matters.
 */
export interface IdempotencyStore {
  claim(key: string, token: string, leaseMs: number): Promise<ClaimResult>;
  /**
   * Marks the key done for `ttlMs`, whoever holds it now: the effect has happened. Resolves
   * `false` when this caller's lease had already expired (another delivery may have claimed
   * the key and run the effect too), `true` otherwise.
   */
  complete(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Drops this caller's claim (the handler failed), so a retry can claim it at once. */
  release(key: string, token: string): Promise<void>;
}

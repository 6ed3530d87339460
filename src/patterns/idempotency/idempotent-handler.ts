import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ConfigError, ConflictError } from '../../core/errors.js';
import type { Delivery, Handler } from '../../core/message.js';
import { intOption, MAX_TIMER_MS, refuseUnknownKeys } from '../../core/options.js';
import { sleep } from '../../core/timers.js';
import type { ClaimResult, IdempotencyStore } from './store.js';
import { resolveWithoutId, skipsDeduplication } from './without-id.js';

export interface IdempotentOptions<T> {
  store: IdempotencyStore;
  /**
   * The de-duplication key. Default: the message id, where it identifies the message (its
   * `idOrigin` is 'message' or 'position'; see `withoutId` for the rest). Derive a business
   * key to catch re-sends with new ids; when given, it is used for every delivery.
   */
  key?: (delivery: Delivery<T>) => string;
  /**
   * What to do, without a `key` function, with a delivery whose id is unique to that delivery
   * (`idOrigin: 'delivery'`: a message from another client that set no id, on a RabbitMQ queue),
   * so that a redelivery of it would carry another id:
   * - 'handle' (default): run the handler without de-duplication (nothing is stored). Never
   *   merges two messages; a broker redelivery of such a message runs it again.
   * - 'reject': throw a non-retriable `ConfigError`, so the message goes to the dead-letter
   *   topic with that reason (after the retry policy). For services that must never apply an
   *   effect twice: have the producer set an id (AMQP `messageId`), or pass `key`.
   */
  withoutId?: 'handle' | 'reject';
  /** How long a claim holds before a crashed claimer is presumed dead. Default 30 000 ms; keep it above your handler's run time. */
  leaseMs?: number;
  /** How long a done key is remembered. Default 7 days; keep it above the broker's redelivery horizon. */
  ttlMs?: number;
  /** Called for each duplicate absorbed (for metrics). */
  onDuplicate?: (delivery: Delivery<T>) => void;
  /**
   * Called when the handler finished after its lease had expired and another delivery had
   * claimed the key: the effect may have run twice. The key is marked done all the same.
   * Seeing this means `leaseMs` is shorter than the handler's run time.
   */
  onLeaseLost?: (delivery: Delivery<T>) => void;
}

/**
 * Wraps a handler so each message's effect happens once per key, on any broker (a delivery
 * without an identifying id is handled as `withoutId` says):
 * - already done: the delivery is acknowledged without running the handler;
 * - another consumer is processing the same key now: this delivery waits (polling the store)
 *   until the other finishes (then it is a duplicate) or its lease expires (then this one does
 *   the work). A key still busy one lease (`leaseMs`, plus 10 ms) after this delivery first
 *   found it busy, on a claim sent after that time, is held by a live lease taken since: then
 *   it fails with a retriable `ConflictError`;
 * - the handler throws: the claim is released and the error propagates, so the retry proceeds;
 * - the store is unreachable: the handler does not run and the error propagates, so the
 *   message is not acknowledged and comes back.
 */
export function idempotent<T>(handler: Handler<T>, options: IdempotentOptions<T>): Handler<T> {
  refuseUnknownKeys(
    options,
    ['store', 'key', 'withoutId', 'leaseMs', 'ttlMs', 'onDuplicate', 'onLeaseLost'],
    'idempotent.',
  );
  const { store, key, onDuplicate, onLeaseLost } = options;
  const withoutId = resolveWithoutId(options.withoutId, 'idempotent.withoutId');
  const leaseMs = intOption(options.leaseMs, 'idempotent.leaseMs', 1, 30_000, MAX_TIMER_MS);
  const ttlMs = intOption(options.ttlMs, 'idempotent.ttlMs', 1, 7 * 24 * 3600_000);
  if (ttlMs < leaseMs) {
    throw new ConfigError(
      'idempotent.ttlMs',
      `must be at least leaseMs (${leaseMs}); a done key must outlive a lease`,
    );
  }
  return async (delivery) => {
    if (skipsDeduplication(delivery, key !== undefined, withoutId, 'idempotent.withoutId')) {
      return handler(delivery);
    }
    const k = key === undefined ? delivery.id : key(delivery);
    const token = randomUUID();
    const claim = await claimWithin(store, k, token, leaseMs, delivery.signal);
    if (claim === 'done') {
      onDuplicate?.(delivery);
      return;
    }
    if (claim === 'busy') {
      throw new ConflictError(
        `message ${k} is still being processed by another consumer after ${leaseMs} ms`,
      );
    }
    try {
      await handler(delivery);
    } catch (error) {
      await store.release(k, token).catch(() => {}); // the lease expiring does the same, later
      throw error;
    }
    if (!(await store.complete(k, token, ttlMs))) onLeaseLost?.(delivery);
  };
}

/**
 * Stores decide expiry in whole milliseconds (Redis keeps a key alive through its expiry
 * millisecond), and the waiter's clock and the store's round down differently: a claim sent
 * this long after one lease has passed finds that lease expired.
 */
const EXPIRY_MARGIN_MS = 10;

/**
 * Claims `key`, waiting while another consumer's live lease holds it. Gives up ('busy') only
 * on a claim sent at least `leaseMs` (plus a margin) after the first 'busy' answer arrived.
 * That answer was decided before it arrived, so any lease it saw had at most `leaseMs` left
 * then: the last claim finds it expired, however late timers fire or answers arrive on a
 * loaded machine. Deciding on an answer that arrives past a deadline instead would race the
 * lease being waited out: the store may have answered before the lease expired.
 */
async function claimWithin(
  store: IdempotencyStore,
  key: string,
  token: string,
  leaseMs: number,
  signal: AbortSignal,
): Promise<ClaimResult> {
  const first = await store.claim(key, token, leaseMs);
  if (first !== 'busy') return first;
  // A monotonic clock: a wall-clock step must not cut the wait short.
  const deadline = performance.now() + leaseMs + EXPIRY_MARGIN_MS;
  let pause = 10;
  for (;;) {
    const left = deadline - performance.now();
    if (left > 0 && !(await sleep(Math.min(pause, left), signal))) return 'busy';
    const sentAt = performance.now();
    const claim = await store.claim(key, token, leaseMs);
    if (claim !== 'busy' || sentAt >= deadline) return claim;
    pause = Math.min(pause * 2, 500);
  }
}

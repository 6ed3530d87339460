import { randomUUID } from 'node:crypto';
import { ConflictError } from '../../core/errors.js';
import type { Delivery, Handler } from '../../core/message.js';
import { refuseUnknownKeys } from '../../core/options.js';
import type { IdempotencyStore } from './store.js';

export interface IdempotentOptions<T> {
  store: IdempotencyStore;
  /** The de-duplication key. Default: the message id. Derive a business key to catch re-sends with new ids. */
  key?: (delivery: Delivery<T>) => string;
  /** How long a claim holds before a crashed claimer is presumed dead. Default 30 000 ms; keep it above your handler's run time. */
  leaseMs?: number;
  /** How long a done key is remembered. Default 7 days; keep it above the broker's redelivery horizon. */
  ttlMs?: number;
  /** Called for each duplicate absorbed (for metrics). */
  onDuplicate?: (delivery: Delivery<T>) => void;
}

/**
 * Wraps a handler so each message's effect happens once per key, on any broker:
 * - already done: the delivery is acknowledged without running the handler;
 * - another consumer is processing the same key now: this delivery fails with a retriable
 *   error and comes back after the retry back-off, when the other has finished or died;
 * - the handler throws: the claim is released and the error propagates, so the retry proceeds;
 * - the store is unreachable: the handler does not run and the error propagates, so the
 *   message is not acknowledged and comes back.
 */
export function idempotent<T>(handler: Handler<T>, options: IdempotentOptions<T>): Handler<T> {
  refuseUnknownKeys(options, ['store', 'key', 'leaseMs', 'ttlMs', 'onDuplicate'], 'idempotent.');
  const {
    store,
    key = (d: Delivery<T>) => d.id,
    leaseMs = 30_000,
    ttlMs = 7 * 24 * 3600_000,
    onDuplicate,
  } = options;
  return async (delivery) => {
    const k = key(delivery);
    const token = randomUUID();
    const claim = await store.claim(k, token, leaseMs);
    if (claim === 'done') {
      onDuplicate?.(delivery);
      return;
    }
    if (claim === 'busy') {
      throw new ConflictError(`message ${k} is being processed by another consumer`);
    }
    try {
      await handler(delivery);
    } catch (error) {
      await store.release(k, token).catch(() => {}); // the lease expiring does the same, later
      throw error;
    }
    await store.complete(k, token, ttlMs);
  };
}

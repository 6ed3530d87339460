import { ConfigError } from '../../core/errors.js';
import type { Delivery } from '../../core/message.js';
import { oneOf } from '../../core/options.js';

/** What the idempotency wrappers do with a delivery whose id is unique to that delivery. */
export type WithoutId = 'handle' | 'reject';

export function resolveWithoutId(value: unknown, field: string): WithoutId {
  return oneOf(value, field, ['handle', 'reject'], 'handle');
}

/**
 * True when `delivery` is to be handled without de-duplication: no `key` function was given
 * and its id is unique to this delivery (`idOrigin: 'delivery'`), so storing it would never
 * recognise a repeat. Throws for `'reject'`.
 */
export function skipsDeduplication(
  delivery: Delivery<unknown>,
  hasKey: boolean,
  withoutId: WithoutId,
  field: string,
): boolean {
  if (hasKey || delivery.idOrigin !== 'delivery') return false;
  if (withoutId === 'handle') return true;
  throw new ConfigError(
    field,
    `message ${delivery.id} on ${delivery.topic} has no producer-given id, so a redelivery could not be recognised; set an id when publishing (AMQP messageId) or pass a key function`,
  );
}

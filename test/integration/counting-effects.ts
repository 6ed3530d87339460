import type { Delivery } from '../../src/index.js';
import { idempotent, MemoryIdempotencyStore } from '../../src/patterns/index.js';

/** An idempotent handler that counts effects per body `n`. */
export function countingEffects() {
  const effects = new Map<number, number>();
  const deliveries: Delivery<{ n: number }>[] = [];
  const handler = idempotent<{ n: number }>(
    (d) => {
      deliveries.push(d);
      effects.set(d.body.n, (effects.get(d.body.n) ?? 0) + 1);
    },
    { store: new MemoryIdempotencyStore() },
  );
  return { effects, deliveries, handler };
}

import type { Delivery } from '../core/message.js';

/**
 * Polls `condition` until it returns true (or a truthy value, which is returned), failing with
 * `message` after `timeoutMs` (default 30 000). Use it instead of sleeping for a guess.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string | (() => string) } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) {
      const text = typeof options.message === 'function' ? options.message() : options.message;
      throw new Error(`waitFor: timed out after ${timeoutMs} ms${text ? `: ${text}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
  }
}

/** A unique topic or group name for one test: `prefix-<time>-<random>`. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Collects deliveries from a handler and waits for counts. */
export class Collector<T = unknown> {
  readonly deliveries: Delivery<T>[] = [];

  /** A handler that records each delivery, then runs `inner` if given. */
  handler(inner?: (d: Delivery<T>) => Promise<void> | void): (d: Delivery<T>) => Promise<void> {
    return async (d) => {
      if (inner) await inner(d);
      this.deliveries.push(d);
    };
  }

  get bodies(): T[] {
    return this.deliveries.map((d) => d.body);
  }

  /** Distinct message ids seen. */
  get ids(): Set<string> {
    return new Set(this.deliveries.map((d) => d.id));
  }

  async waitForCount(count: number, timeoutMs?: number): Promise<Delivery<T>[]> {
    await waitFor(() => this.deliveries.length >= count, {
      timeoutMs,
      message: () => `expected ${count} deliveries, have ${this.deliveries.length}`,
    });
    return this.deliveries;
  }

  async waitForIds(count: number, timeoutMs?: number): Promise<Set<string>> {
    await waitFor(() => this.ids.size >= count, {
      timeoutMs,
      message: () => `expected ${count} distinct ids, have ${this.ids.size}`,
    });
    return this.ids;
  }
}

/**
 * A delivery for unit-testing a handler without a broker: `await handler(testDelivery({ body }))`.
 * Defaults: a unique producer-given id, attempt 1, now as the timestamp, no key, tag or headers.
 */
export function testDelivery<T = unknown>(fields: Partial<Delivery<T>> = {}): Delivery<T> {
  return {
    topic: 'test',
    body: undefined as T,
    key: undefined,
    tag: undefined,
    headers: {},
    id: uniqueName('msg'),
    idOrigin: 'message',
    attempt: 1,
    timestamp: Date.now(),
    partition: undefined,
    offset: undefined,
    deadLetter: undefined,
    signal: new AbortController().signal,
    ...fields,
  };
}

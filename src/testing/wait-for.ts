import type { EventSource } from '../core/events.js';
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

const pushListeners = new WeakMap<object, () => void>();

/** An array whose `push` calls `onPush`; its `map`, `filter` and friends return plain arrays. */
class NotifyingArray<T> extends Array<T> {
  static override get [Symbol.species]() {
    return Array;
  }

  constructor(onPush: () => void) {
    super();
    // Not an own enumerable property: the array must still equal a plain one in assertions.
    pushListeners.set(this, onPush);
  }

  override push(...items: T[]): number {
    const length = super.push(...items);
    pushListeners.get(this)?.();
    return length;
  }
}

/** What a watched broker reported about one message id, last event first wins. */
export type MessageOutcome = 'handled' | 'failed' | 'dead-lettered';

interface Waiter {
  ready: () => boolean;
  resolve: () => void;
}

/**
 * A spy on a subscription: collects the deliveries its handler saw and, once `watch(broker)`
 * is called, what the broker's consumer engine did with each message (handled, failed,
 * dead-lettered). Waits resolve the moment the awaited event happens; nothing polls.
 */
export class Collector<T = unknown> {
  /** Deliveries seen; a `push` by anyone (not only `handler`) wakes the waits. */
  readonly deliveries: Delivery<T>[] = new NotifyingArray<Delivery<T>>(() => this.changed());
  /** Last outcome per message id, from the watched broker's events. */
  readonly outcomes = new Map<string, MessageOutcome>();
  /** Dead-lettered message ids, in order, from the watched broker's events. */
  readonly deadLettered: string[] = [];
  private waiters: Waiter[] = [];

  /** A handler that records each delivery, then runs `inner` if given. */
  handler(inner?: (d: Delivery<T>) => Promise<void> | void): (d: Delivery<T>) => Promise<void> {
    return async (d) => {
      if (inner) await inner(d);
      this.deliveries.push(d);
    };
  }

  /**
   * Follows the outcome events of `source` (a broker) for subscriptions of `topic` (all when
   * omitted). Returns a function that stops following.
   */
  watch(source: EventSource, topic?: string): () => void {
    const mine = (e: { topic: string }) => topic === undefined || e.topic === topic;
    const stops = [
      source.on('handled', (e) => {
        if (mine(e)) this.record(e.id, 'handled');
      }),
      source.on('failed', (e) => {
        if (mine(e)) this.record(e.id, 'failed');
      }),
      source.on('dead-lettered', (e) => {
        if (!mine(e)) return;
        this.deadLettered.push(e.id);
        this.record(e.id, 'dead-lettered');
      }),
    ];
    return () => {
      for (const stop of stops) stop();
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
    await this.until(
      () => this.deliveries.length >= count,
      timeoutMs,
      () => `expected ${count} deliveries, have ${this.deliveries.length}`,
    );
    return this.deliveries;
  }

  async waitForIds(count: number, timeoutMs?: number): Promise<Set<string>> {
    await this.until(
      () => this.ids.size >= count,
      timeoutMs,
      () => `expected ${count} distinct ids, have ${this.ids.size}`,
    );
    return this.ids;
  }

  /** Waits until the watched broker reported `outcome` for message `id` (needs `watch`). */
  async waitForOutcome(id: string, outcome: MessageOutcome, timeoutMs?: number): Promise<void> {
    await this.until(
      () => this.outcomes.get(id) === outcome,
      timeoutMs,
      () => `expected message ${id} to be ${outcome}, it is ${this.outcomes.get(id) ?? 'not seen'}`,
    );
  }

  /** Waits until `count` messages were dead-lettered (needs `watch`). */
  async waitForDeadLetters(count: number, timeoutMs?: number): Promise<string[]> {
    await this.until(
      () => this.deadLettered.length >= count,
      timeoutMs,
      () => `expected ${count} dead letters, have ${this.deadLettered.length}`,
    );
    return this.deadLettered;
  }

  private record(id: string, outcome: MessageOutcome): void {
    this.outcomes.set(id, outcome);
    this.changed();
  }

  private changed(): void {
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.ready()) w.resolve();
      else this.waiters.push(w);
    }
  }

  private until(ready: () => boolean, timeoutMs = 30_000, message: () => string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        ready,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`Collector: timed out after ${timeoutMs} ms: ${message()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
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

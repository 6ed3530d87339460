import { describe, expect, it } from 'vitest';
import { KeyedExecutor } from '../../src/core/keyed-executor.js';
import { OffsetTracker } from '../../src/core/offset-tracker.js';

describe('KeyedExecutor', () => {
  it('runs one lane in order, lanes in parallel, never above the concurrency limit', async () => {
    const executor = new KeyedExecutor(3);
    let running = 0;
    let peak = 0;
    const order = new Map<string, number[]>();
    for (let i = 0; i < 60; i++) {
      const lane = `k${i % 4}`;
      executor.submit(lane, async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, (i * 7) % 3));
        order.set(lane, [...(order.get(lane) ?? []), i]);
        running--;
      });
    }
    await executor.onIdle();
    expect(peak).toBe(3);
    for (const [lane, seen] of order) {
      expect(seen, lane).toEqual([...seen].sort((a, b) => a - b));
      expect(seen).toHaveLength(15);
    }
  });
});

describe('OffsetTracker', () => {
  it('never commits past an unfinished offset', () => {
    const t = new OffsetTracker(10);
    expect(t.committable()).toBe(10);
    for (const o of [10, 11, 12, 13]) t.start(o);
    t.finish(12);
    t.finish(11);
    expect(t.committable()).toBe(10);
    t.finish(10);
    expect(t.committable()).toBe(13);
    t.finish(13);
    expect(t.committable()).toBe(14);
    expect(t.inFlight).toBe(0);
  });
});

import { describe, expect, it, vi } from 'vitest';
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

  it('continueWith: the task ends when its promise settled and its continuation finished, with or without a lane', async () => {
    for (const lane of ['l', undefined]) {
      const executor = new KeyedExecutor(1);
      const seen: string[] = [];
      const after = async (a: string, b: number, failed: boolean, error: unknown) => {
        seen.push(`after ${a}${b} ${failed ? String(error) : 'ok'}`);
        await new Promise((resolve) => setTimeout(resolve, 2));
        seen.push(`after ${a}${b} done`);
      };
      const task = (a: string, b: number): Promise<void> => {
        seen.push(`run ${a}${b}`);
        const result = b === 2 ? Promise.reject(new Error('no')) : Promise.resolve();
        executor.continueWith(after);
        return result;
      };
      executor.submit(lane, task, 'x', 1);
      executor.submit(lane, task, 'x', 2);
      executor.submit(lane, () => {
        seen.push('plain');
        return undefined;
      });
      await executor.onIdle();
      expect(seen, String(lane)).toEqual([
        'run x1',
        'after x1 ok',
        'after x1 done',
        'run x2',
        'after x2 Error: no',
        'after x2 done',
        'plain',
      ]);
    }
  });

  it("hands a busy lane's slot to a task waiting for one between two of its tasks", async () => {
    const executor = new KeyedExecutor(1);
    const started: string[] = [];
    const gates = new Map<string, () => void>();
    const task = (name: string) => () => {
      started.push(name);
      return new Promise<void>((resolve) => gates.set(name, resolve));
    };
    executor.submit('a', task('a1'));
    executor.submit('a', task('a2'));
    executor.submit('b', task('b1'));
    executor.submit('a', task('a3'));
    for (const name of ['a1', 'b1', 'a2', 'a3']) {
      await vi.waitFor(() => expect(started.at(-1)).toBe(name));
      gates.get(name)?.();
    }
    await executor.onIdle();
    expect(started).toEqual(['a1', 'b1', 'a2', 'a3']);
  });

  it('starts no next task of a lane while paused, nor above a lowered limit', async () => {
    const executor = new KeyedExecutor(2);
    const started: string[] = [];
    const gates = new Map<string, () => void>();
    const task = (name: string) => () => {
      started.push(name);
      return new Promise<void>((resolve) => gates.set(name, resolve));
    };
    executor.submit('a', task('a1'));
    executor.submit('a', task('a2'));
    executor.submit('b', task('b1'));
    executor.submit('b', task('b2'));
    expect(started).toEqual(['a1', 'b1']);
    executor.pause();
    gates.get('a1')?.();
    await executor.onSizeBelow(4); // a1 finished
    expect(started).toEqual(['a1', 'b1']);
    executor.resume();
    await vi.waitFor(() => expect(started).toEqual(['a1', 'b1', 'a2']));
    executor.setConcurrency(1);
    gates.get('b1')?.();
    await executor.onSizeBelow(3); // b1 finished; b2 waits for a2's slot
    expect(started).toEqual(['a1', 'b1', 'a2']);
    gates.get('a2')?.();
    await vi.waitFor(() => expect(started).toEqual(['a1', 'b1', 'a2', 'b2']));
    gates.get('b2')?.();
    await executor.onIdle();
    expect(executor.size).toBe(0);
  });

  it('passes its arguments to a task and counts one finished synchronously', async () => {
    const executor = new KeyedExecutor(1);
    const seen: unknown[] = [];
    const run = (a: number, b: string): undefined => {
      seen.push(a, b);
      return undefined;
    };
    executor.submit(undefined, run, 1, 'x');
    executor.submit('l', run, 2, 'y');
    executor.submit('l', run, 3, 'z');
    await executor.onIdle();
    expect(seen).toEqual([1, 'x', 2, 'y', 3, 'z']);
    expect(executor.size).toBe(0);
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

import { describe, expect, it } from 'vitest';
import { connect } from '../../src/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';

describe('memory broker retention', () => {
  it('releases consumed records beyond the retention limit and keeps unconsumed ones', async () => {
    const broker = await connect(`memory://${uniqueName('retention')}?retention=100`);
    const topic = uniqueName('t');
    const producer = broker.producer();
    let handled = 0;
    const fast = await broker.subscribe({ topic, group: 'fast' }, () => {
      handled++;
    });
    await producer.sendBatch(Array.from({ length: 5000 }, (_, i) => ({ topic, body: i })));
    await waitFor(() => handled === 5000);
    await fast.close();
    // Another commit cycle (or append) releases what every group consumed.
    await producer.sendBatch(Array.from({ length: 2000 }, (_, i) => ({ topic, body: i })));
    const backlog = await broker.backlog(topic, 'fast');
    expect(backlog.total).toBe(2000); // unconsumed records stay, whatever the limit
    const replay: number[] = [];
    await broker.subscribe({ topic, group: 'late', startFrom: 'earliest' }, (d) => {
      replay.push(d.body as number);
    });
    await waitFor(() => replay.length >= 2000);
    // Of the 5000 consumed records only about `retention` remain for a replay from the start.
    expect(replay.length).toBeLessThan(2000 + 1100);
    await broker.close();
  });

  it('keeps a slow group’s unconsumed records even past the limit', async () => {
    const broker = await connect(`memory://${uniqueName('retention')}?retention=10`);
    const topic = uniqueName('t');
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: number[] = [];
    await broker.subscribe({ topic, group: 'slow' }, async (d) => {
      await gate;
      seen.push(d.body as number);
    });
    await broker.producer().sendBatch(Array.from({ length: 3000 }, (_, i) => ({ topic, body: i })));
    release();
    await waitFor(() => seen.length === 3000);
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    await broker.close();
  });
});

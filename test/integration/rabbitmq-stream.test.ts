import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';

describe('rabbitmq: stream topics replay from a timestamp', () => {
  const topic = uniqueName('stream');
  let broker: Broker;
  const subscriptions: Subscription[] = [];

  beforeAll(async () => {
    broker = await connect(inject('amqpUrl'), { rabbitmq: { streams: [topic] } });
  });

  afterAll(async () => {
    await Promise.all(subscriptions.map((s) => s.close({ timeoutMs: 1000 })));
    await broker?.close();
  });

  it('reads from the first message at or after the timestamp, and from the start with earliest', async () => {
    await broker.ensureTopic(topic);
    const producer = broker.producer();
    for (let i = 0; i < 5; i++) await producer.send({ topic, key: `k${i}`, body: { i, phase: 'before' } });
    const cut = Date.now() + 20;
    await waitFor(() => Date.now() > cut + 20, { intervalMs: 5 });
    for (let i = 0; i < 5; i++) await producer.send({ topic, key: `k${i}`, body: { i, phase: 'after' } });

    const fromCut = new Collector<{ i: number; phase: string }>();
    subscriptions.push(
      await broker.subscribe(
        { topic, group: 'replay-cut', startFrom: { timestamp: cut } },
        fromCut.handler(),
      ),
    );
    const all = new Collector<{ i: number; phase: string }>();
    subscriptions.push(
      await broker.subscribe({ topic, group: 'replay-all', startFrom: 'earliest' }, all.handler()),
    );
    await fromCut.waitForCount(5);
    await all.waitForCount(10);
    // Sent after both caught up: once it arrives, nothing older can still be on its way.
    await producer.send({ topic, body: { i: 5, phase: 'last' } });
    await fromCut.waitForCount(6);
    await all.waitForCount(11);
    expect(fromCut.bodies.map((b) => b.phase)).toEqual(['after', 'after', 'after', 'after', 'after', 'last']);
    expect(all.bodies.filter((b) => b.phase === 'before').map((b) => b.i)).toEqual([0, 1, 2, 3, 4]);
    expect(fromCut.deliveries.every((d) => d.offset !== undefined)).toBe(true);
  });

  it('refuses a timestamp on a topic that is not a stream with UnsupportedError', async () => {
    const plain = uniqueName('not-stream');
    await broker.ensureTopic(plain);
    await expect(
      broker.subscribe({ topic: plain, group: 'g', startFrom: { timestamp: Date.now() } }, () => {}),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('stream') });
  });
});

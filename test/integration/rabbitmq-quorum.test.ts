import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Delivery, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { managementGet } from './rabbitmq-helpers.js';

interface QueueInfo {
  type: string;
  arguments: Record<string, unknown>;
}

describe('rabbitmq: quorum queues', () => {
  let broker: Broker;
  const subscriptions: Subscription[] = [];

  beforeAll(async () => {
    broker = await connect(inject('amqpUrl'), { rabbitmq: { queueType: 'quorum', deliveryLimit: 7 } });
  });

  afterAll(async () => {
    await Promise.all(subscriptions.map((s) => s.close({ timeoutMs: 1000 })));
    await broker?.close();
  });

  it('declares group and partition queues as quorum queues with a delivery limit', async () => {
    const topic = uniqueName('quorum');
    await broker.ensureTopic(topic, { partitions: 2 });
    const concurrent = new Collector();
    const ordered = new Collector();
    subscriptions.push(
      await broker.subscribe({ topic, group: 'c', order: 'concurrent' }, concurrent.handler()),
    );
    subscriptions.push(await broker.subscribe({ topic, group: 'o', order: 'key' }, ordered.handler()));
    const producer = broker.producer();
    for (let i = 0; i < 10; i++) await producer.send({ topic, key: `k${i}`, body: { i } });
    await concurrent.waitForIds(10);
    await ordered.waitForIds(10);
    for (const queue of [`${topic}:c`, `${topic}:o:p0`, `${topic}:o:p1`]) {
      const info = await managementGet<QueueInfo>(
        inject('amqpUrl'),
        `/queues/%2F/${encodeURIComponent(queue)}`,
      );
      expect(info.type).toBe('quorum');
      expect(info.arguments['x-delivery-limit']).toBe(7);
      expect(info.arguments['x-dead-letter-exchange']).toBe(
        `${topic}.${queue.includes(':o') ? 'o' : 'c'}.dlq`,
      );
    }
  });

  it('counts a redelivery after an unacknowledged close as a further attempt (x-delivery-count)', async () => {
    const topic = uniqueName('quorum');
    await broker.ensureTopic(topic);
    const attempts: number[] = [];
    const stuck = async (d: Delivery) => {
      attempts.push(d.attempt);
      // Never finishes on its own: the close below times out and leaves it unacknowledged.
      await new Promise<void>((resolve) => d.signal.addEventListener('abort', () => resolve()));
    };
    const sub = { topic, group: 'g', order: 'concurrent' as const };
    const first = await broker.subscribe(sub, stuck);
    await broker.producer().send({ topic, body: { n: 1 } });
    await waitFor(() => attempts.length === 1);
    await first.close({ timeoutMs: 50 });
    const again = new Collector();
    subscriptions.push(await broker.subscribe(sub, again.handler()));
    const [d] = await again.waitForCount(1);
    expect(attempts).toEqual([1]);
    expect(d?.attempt).toBe(2);
  });
});

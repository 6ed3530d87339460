import { describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { connect, defineTopic } from '../../src/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';

/**
 * The README's API tour, as written there, on each broker: switching brokers is changing the
 * URL. Only the topic names are made unique per run.
 */
async function apiTour(url: string): Promise<{ handled: unknown[]; backlogTotal: number }> {
  const names = {
    orders: uniqueName('orders'),
    logs: uniqueName('logs'),
    reminders: uniqueName('reminders'),
  };
  const broker = await connect(url);
  try {
    await broker.ensureTopic(names.orders, { partitions: 4 });

    const orders = defineTopic(names.orders, {
      schema: z.object({ orderId: z.string(), amount: z.number() }),
    });

    const producer = broker.producer();
    const { id } = await producer.send({
      topic: orders,
      key: 'order-42',
      tag: 'placed',
      headers: { 'x-trace': 'abc' },
      body: { orderId: 'order-42', amount: 99 },
    });
    await producer.sendBatch([
      { topic: orders, key: 'order-43', tag: 'placed', body: { orderId: 'order-43', amount: 5 } },
    ]);
    producer.sendOneWay({ topic: names.logs, body: 'hi' });
    await producer.send({ topic: names.reminders, body: {}, delayMs: 60_000 });

    const handled: unknown[] = [];
    const subscription = await broker.subscribe(
      {
        topic: orders,
        group: 'billing',
        order: 'key',
        concurrency: 8,
        tags: ['placed'],
        retry: { attempts: 5, backoff: { initialMs: 1000, multiplier: 2, maxMs: 60_000 } },
      },
      async (delivery) => {
        handled.push({ id: delivery.id, amount: delivery.body.amount, attempt: delivery.attempt });
      },
    );
    await waitFor(() => handled.length === 2, { message: () => `handled ${handled.length} of 2` });
    expect(handled).toContainEqual({ id, amount: 99, attempt: 1 });

    subscription.setConcurrency(16);
    subscription.pause();
    subscription.resume();
    expect(subscription.concurrency).toBe(16);

    const backlog = await broker.backlog(names.orders, 'billing');
    await subscription.close();
    return { handled, backlogTotal: backlog.total };
  } finally {
    await broker.close();
  }
}

describe('the README API tour runs unchanged on every broker', () => {
  for (const [name, url] of [
    ['memory', 'memory://readme-tour'],
    ['kafka', inject('kafkaUrl')],
    ['rabbitmq', inject('amqpUrl')],
    ['rocketmq', inject('rocketmqUrl')],
  ] as const) {
    it(`on ${name}`, async () => {
      const { handled, backlogTotal } = await apiTour(url);
      expect(handled).toHaveLength(2);
      expect(backlogTotal).toBeGreaterThanOrEqual(0);
    });
  }
});

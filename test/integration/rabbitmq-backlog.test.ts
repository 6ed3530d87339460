import type { ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, isMqError } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { rawConnection } from './rabbitmq-helpers.js';

describe('rabbitmq: backlog', () => {
  let broker: Broker;
  let raw: ChannelModel;

  beforeAll(async () => {
    broker = await connect(inject('amqpUrl'));
    raw = await rawConnection(inject('amqpUrl'));
  });

  afterAll(async () => {
    await broker?.close();
    await raw?.close();
  });

  it('reports ready messages per partition queue of a key-ordered group, and their sum', async () => {
    const topic = uniqueName('backlog');
    await broker.ensureTopic(topic, { partitions: 3 });
    const got = new Collector();
    const sub = await broker.subscribe({ topic, group: 'ordered', order: 'key' }, got.handler());
    await sub.close();
    const producer = broker.producer();
    await producer.sendBatch(Array.from({ length: 60 }, (_, i) => ({ topic, key: `key-${i}`, body: { i } })));

    const backlog = await broker.backlog(topic, 'ordered');
    expect(backlog.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect(backlog.total).toBe(60);
    const channel = await raw.createChannel();
    for (const p of backlog.partitions) {
      const { messageCount } = await channel.checkQueue(`${topic}:ordered:p${p.partition}`);
      expect(p.backlog).toBe(messageCount);
    }
    // 60 distinct keys over 3 queues: the consistent hash leaves none empty.
    expect(backlog.partitions.every((p) => p.backlog > 0)).toBe(true);
    await channel.close();

    // Consuming drains it.
    const reopened = await broker.subscribe({ topic, group: 'ordered', order: 'key' }, got.handler());
    await got.waitForIds(60);
    await reopened.close();
    expect((await broker.backlog(topic, 'ordered')).total).toBe(0);
  });

  it('reports a concurrent group as one queue and an unknown group as empty', async () => {
    const topic = uniqueName('backlog');
    await broker.ensureTopic(topic);
    const sub = await broker.subscribe({ topic, group: 'workers', order: 'concurrent' }, () => {});
    await sub.close();
    const producer = broker.producer();
    for (let i = 0; i < 4; i++) await producer.send({ topic, body: { i } });
    expect(await broker.backlog(topic, 'workers')).toEqual({
      topic,
      group: 'workers',
      total: 4,
      partitions: [{ partition: 0, backlog: 4, consumers: 0 }],
    });
    expect((await broker.backlog(topic, 'nobody')).total).toBe(0);
  });

  it('counts deliveries consumers hold unacknowledged when given the management API', async () => {
    const amqpUrl = new URL(inject('amqpUrl'));
    const managed = await connect(inject('amqpUrl'), {
      rabbitmq: { managementUrl: `http://${amqpUrl.hostname}:15672` },
    });
    try {
      const topic = uniqueName('backlog');
      await managed.ensureTopic(topic);
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const got = new Collector();
      const sub = await managed.subscribe(
        { topic, group: 'held' },
        got.handler(() => gate),
      );
      await managed.producer().sendBatch(Array.from({ length: 10 }, (_, i) => ({ topic, body: { i } })));
      // All 10 sit in the consumer's prefetch: nothing is ready, so AMQP alone reports 0...
      await waitFor(async () => (await broker.backlog(topic, 'held')).total === 0);
      // ...while the management API (sampled every 5 s) sees them in flight.
      const held = await waitFor(
        async () => {
          const b = await managed.backlog(topic, 'held');
          return b.total === 10 ? b : undefined;
        },
        { timeoutMs: 30_000, message: 'backlog with management never counted the 10 held deliveries' },
      );
      expect(held.partitions).toEqual([{ partition: 0, backlog: 10, inFlight: 10, consumers: 1 }]);
      release();
      await got.waitForCount(10);
      await waitFor(async () => (await managed.backlog(topic, 'held')).total === 0, { timeoutMs: 30_000 });
      await sub.close();
    } finally {
      await managed.close();
    }
  });

  it('refuses a management URL that is not http(s)', async () => {
    const error = await connect(inject('amqpUrl'), { rabbitmq: { managementUrl: 'amqp://127.0.0.1' } }).catch(
      (e: unknown) => e,
    );
    expect(isMqError(error, 'CONFIG')).toBe(true);
    expect((error as unknown as { field: string }).field).toBe('rabbitmq.managementUrl');
  });
});

import type { ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';
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
      partitions: [{ partition: 0, backlog: 4 }],
    });
    expect((await broker.backlog(topic, 'nobody')).total).toBe(0);
  });
});

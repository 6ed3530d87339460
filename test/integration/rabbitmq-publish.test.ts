import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, isMqError, type Subscription } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

describe('rabbitmq: publishing', () => {
  let broker: Broker;
  const subscriptions: Subscription[] = [];

  beforeAll(async () => {
    broker = await connect(inject('amqpUrl'));
  });

  afterAll(async () => {
    await Promise.all(subscriptions.map((s) => s.close({ timeoutMs: 1000 })));
    await broker?.close();
  });

  it('holds a message no queue takes for the next new group, and refuses it with holdUnroutedMs 0', async () => {
    const topic = uniqueName('unrouted');
    await broker.ensureTopic(topic);
    const producer = broker.producer();
    await producer.send({ topic, tag: 'created', body: { n: 1 } });
    const got = new Collector();
    subscriptions.push(await broker.subscribe({ topic, group: 'created', tags: ['created'] }, got.handler()));
    await got.waitForCount(1);
    expect(got.bodies).toEqual([{ n: 1 }]);
    await producer.close();

    const refusing = await connect(inject('amqpUrl'), { rabbitmq: { holdUnroutedMs: 0 } });
    try {
      const strict = uniqueName('unroutable');
      await refusing.ensureTopic(strict);
      const error = await refusing
        .producer()
        .send({ topic: strict, body: { n: 1 } })
        .catch((e: unknown) => e);
      expect(isMqError(error, 'PUBLISH')).toBe(true);
      expect((error as { retriable: boolean }).retriable).toBe(false);
      expect((error as Error).message).toContain('unroutable');
      // A topic keeps what its exchange was first declared with: this one holds.
      await refusing.producer().send({ topic, tag: 'paid', body: { n: 2 } });
    } finally {
      await refusing.close();
    }
  });

  it('refuses producer({ idempotent: true }) with an UnsupportedError, and sends with idempotent: false', async () => {
    let error: unknown;
    try {
      broker.producer({ idempotent: true });
    } catch (e) {
      error = e;
    }
    expect(isMqError(error, 'UNSUPPORTED'), String(error)).toBe(true);
    expect((error as Error).message).toContain('producer.idempotent');
    const topic = uniqueName('not-idempotent');
    await broker.ensureTopic(topic);
    const got = new Collector();
    subscriptions.push(await broker.subscribe({ topic, group: 'g' }, got.handler()));
    const producer = broker.producer({ idempotent: false });
    await producer.send({ topic, body: { n: 1 } });
    await got.waitForCount(1);
    expect(got.bodies).toEqual([{ n: 1 }]);
    await producer.close();
  });

  it('pipelines many sends on one producer and resolves each on its confirm', async () => {
    const topic = uniqueName('pipeline');
    await broker.ensureTopic(topic, { partitions: 2 });
    const got = new Collector<{ i: number }>();
    subscriptions.push(
      await broker.subscribe({ topic, group: 'g', order: 'concurrent', concurrency: 8 }, got.handler()),
    );
    const producer = broker.producer();
    const results = await Promise.all(
      Array.from({ length: 2000 }, (_, i) => producer.send({ topic, key: `k${i % 10}`, body: { i } })),
    );
    await got.waitForIds(2000);
    const received = got.ids;
    expect(results.filter((r) => !received.has(r.id))).toEqual([]); // each resolved send arrived
    await producer.close();
  });
});

import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';

/** The plain client's options: the proxy from the test URL, and no log file under $HOME. */
function plainOptions() {
  const url = new URL(inject('rocketmqUrl'));
  const quiet = () => {};
  return {
    endpoints: `${url.hostname}:${url.port}`,
    namespace: '',
    // The proxy refuses a long poll whose deadline leaves it too little time.
    requestTimeout: 10_000,
    logger: { info: quiet, warn: quiet, error: quiet, debug: quiet },
  };
}

describe('rocketmq: interop with plain rocketmq-client-nodejs', () => {
  let broker: Broker;
  const subscriptions: Subscription[] = [];
  const closers: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    broker = await connect(inject('rocketmqUrl'));
  });

  afterAll(async () => {
    await Promise.all(subscriptions.map((s) => s.close({ timeoutMs: 1000 })));
    await Promise.all(closers.map((c) => c().catch(() => {})));
    await broker?.close();
  });

  it('a plain SimpleConsumer reads mqkit messages, the tag filtered by the broker', async () => {
    const topic = uniqueName('interop');
    await broker.ensureTopic(topic);
    const consumer = new SimpleConsumer({
      ...plainOptions(),
      consumerGroup: uniqueName('plain'),
      subscriptions: new Map([[topic, 'created']]),
      awaitDuration: 2000,
    });
    await consumer.startup();
    closers.push(() => consumer.shutdown());
    const producer = broker.producer();
    await producer.send({ topic, body: { skipped: true }, tag: 'other' });
    const sent = await producer.send({
      topic,
      body: { order: 42, item: '订单' },
      key: 'customer-7',
      tag: 'created',
      headers: { 'x-trace': 'abc' },
    });
    const got: Awaited<ReturnType<SimpleConsumer['receive']>> = [];
    await waitFor(
      async () => {
        for (const m of await consumer.receive(16, 15_000)) {
          got.push(m);
          await consumer.ack(m);
        }
        return got.length >= 1;
      },
      { timeoutMs: 30_000, message: 'plain consumer got nothing' },
    );
    expect(got).toHaveLength(1);
    const m = got[0] as (typeof got)[number];
    expect(JSON.parse(m.body.toString('utf8'))).toEqual({ order: 42, item: '订单' });
    expect(m.topic).toBe(topic);
    expect(m.tag).toBe('created');
    expect(m.keys).toEqual(['customer-7']);
    // The key is the FIFO message group: one key's messages keep to one queue, in order.
    expect(m.messageGroup).toBe('customer-7');
    expect(m.properties.get('mq-id')).toBe(sent.id);
    expect(m.properties.get('x-trace')).toBe('abc');
    expect(m.properties.get('content-type')).toBe('application/json');
  });

  it('mqkit consumes what a plain Producer sends: tag, keys and properties', async () => {
    const topic = uniqueName('interop');
    await broker.ensureTopic(topic);
    const all = new Collector<unknown>();
    const paid = new Collector<unknown>();
    subscriptions.push(await broker.subscribe({ topic, group: uniqueName('all') }, all.handler()));
    subscriptions.push(
      await broker.subscribe({ topic, group: uniqueName('paid'), tags: ['paid'] }, paid.handler()),
    );
    const producer = new Producer({ ...plainOptions() });
    await producer.startup();
    closers.push(() => producer.shutdown());
    const first = await producer.send({
      topic,
      body: Buffer.from(JSON.stringify({ n: 1 })),
      tag: 'created',
      keys: ['k1'],
      properties: new Map([['x-origin', 'legacy']]),
    });
    await producer.send({
      topic,
      body: Buffer.from('{"n":2}'),
      tag: 'paid',
      keys: ['k2'],
      messageGroup: 'k2',
    });
    await all.waitForCount(2, 30_000);
    await paid.waitForCount(1, 30_000);
    const d1 = all.deliveries.find((d) => (d.body as { n: number }).n === 1);
    expect(d1?.id).toBe(first.messageId);
    expect(d1?.key).toBe('k1');
    expect(d1?.tag).toBe('created');
    expect(d1?.headers).toEqual({ 'x-origin': 'legacy' });
    expect(paid.bodies).toEqual([{ n: 2 }]);
    expect(paid.deliveries[0]?.key).toBe('k2');
    // Sent last: once it is handled, no 'created' message can still be on its way to 'paid'.
    await producer.send({ topic, body: Buffer.from('{"n":3}'), tag: 'paid' });
    await waitFor(() => paid.deliveries.length === 2, { timeoutMs: 30_000 });
    expect(paid.deliveries.map((d) => d.tag)).toEqual(['paid', 'paid']);
  });

  it("a plain FIFO producer's message group is the delivery's key (its order lane)", async () => {
    const topic = uniqueName('interop');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    subscriptions.push(
      await broker.subscribe({ topic, group: uniqueName('fifo'), order: 'key' }, got.handler()),
    );
    const producer = new Producer({ ...plainOptions() });
    await producer.startup();
    closers.push(() => producer.shutdown());
    for (let n = 0; n < 3; n++)
      await producer.send({ topic, body: Buffer.from(JSON.stringify({ n })), messageGroup: 'order-42' });
    const all = await got.waitForCount(3, 30_000);
    expect(all.map((d) => [d.body.n, d.key])).toEqual([
      [0, 'order-42'],
      [1, 'order-42'],
      [2, 'order-42'],
    ]);
  });
});

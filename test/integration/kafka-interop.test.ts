import kafkajs from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { partitionForKey } from '../../src/core/partitioner.js';
import { connect, type Delivery } from '../../src/index.js';
import { idempotent, MemoryIdempotencyStore } from '../../src/patterns/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { countingEffects } from './counting-effects.js';
import { brokerForSuite, plainKafka, readPlain } from './kafka-helpers.js';

describe('kafka: records are plain Kafka records, both ways', () => {
  const url = inject('kafkaUrl');
  const broker = brokerForSuite(url);

  it('a plain kafkajs consumer reads key, value and the documented headers of an mqkit record', async () => {
    const topic = uniqueName('interop-out');
    await broker().ensureTopic(topic, { partitions: 3 });
    const body = { orderId: 'order-7', amount: 12.5, note: 'ünïcødé ✓' };
    const sent = await broker()
      .producer()
      .send({ topic, key: 'order-7', tag: 'paid', headers: { 'x-trace': 't-1' }, body });
    const bytes = await broker()
      .producer()
      .send({ topic, key: 'bin', body: Buffer.from([0, 1, 255]) });

    const records = await readPlain(url, [topic], (r) => r.length >= 2);
    const json = records.find((r) => r.key === 'order-7');
    expect(JSON.parse(json?.value?.toString('utf8') ?? '')).toEqual(body);
    expect(json?.headers).toEqual({
      'mq-id': sent.id,
      'content-type': 'application/json',
      'mq-tag': 'paid',
      'x-trace': 't-1',
    });
    expect(json?.partition).toBe(sent.partition);
    expect(json?.offset).toBe(sent.offset);
    expect(json?.partition).toBe(partitionForKey('order-7', 3));

    const binary = records.find((r) => r.key === 'bin');
    expect(binary?.value).toEqual(Buffer.from([0, 1, 255]));
    expect(binary?.headers['content-type']).toBe('application/octet-stream');
    expect(binary?.headers['mq-id']).toBe(bytes.id);
  });

  it('gzip-compressed produce requests are read by mqkit and by a plain consumer alike', async () => {
    const gzip = await connect(url, { kafka: { producer: { compression: 'gzip' } } });
    try {
      const topic = uniqueName('gzip');
      await gzip.ensureTopic(topic, { partitions: 1 });
      const body = { text: 'squeeze me '.repeat(100) };
      const got = new Collector();
      await gzip.subscribe({ topic, group: uniqueName('g') }, got.handler());
      await gzip.producer().sendBatch([
        { topic, body },
        { topic, body },
      ]);
      await got.waitForCount(2);
      expect(got.bodies).toEqual([body, body]);
      const plain = await readPlain(url, [topic], (r) => r.length >= 2);
      expect(JSON.parse(plain[0]?.value?.toString() ?? '')).toEqual(body);
    } finally {
      await gzip.close();
    }
  });

  it('consumes records a plain kafkajs producer wrote: JSON without content-type, bytes, keys, headers', async () => {
    const topic = uniqueName('interop-in');
    await broker().ensureTopic(topic, { partitions: 1 });
    const producer = plainKafka(url).producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({
      topic,
      messages: [
        { key: 'k1', value: JSON.stringify({ hello: 'wörld' }), headers: { 'x-origin': 'java-service' } },
        { key: null, value: Buffer.from([1, 2, 3]), headers: { 'content-type': 'application/octet-stream' } },
        { key: 'k3', value: 'not json' },
        { key: null, value: '42' },
      ],
    });
    await producer.disconnect();

    const got = new Collector();
    const group = uniqueName('reader'); // Kafka group ids are cluster-wide: one per test
    await broker().subscribe({ topic, group, order: 'partition' }, got.handler());
    const [first, second, third] = await got.waitForCount(3);
    expect(first).toMatchObject({
      topic,
      key: 'k1',
      body: { hello: 'wörld' },
      headers: { 'x-origin': 'java-service' },
      tag: undefined,
      attempt: 1,
      partition: 0,
      offset: '0',
      id: `${topic}-0-0`, // no mq-id: the position identifies the record
      deadLetter: undefined,
    });
    expect(Buffer.from(second?.body as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
    expect(second?.key).toBeUndefined();
    expect(third?.body).toBe(42);

    // The record that is not JSON went to the dead-letter topic, readable by anyone.
    const [dead] = await readPlain(url, [`${topic}.${group}.dlq`], (r) => r.length >= 1);
    expect(dead?.key).toBe('k3');
    expect(dead?.value?.toString()).toBe('not json');
    expect(dead?.headers).toMatchObject({
      'mq-error-code': 'DECODE',
      'mq-original-topic': topic,
      'mq-original-group': group,
      'mq-original-partition': '0',
      'mq-original-offset': '2',
      'mq-attempt': '1',
    });
  });

  it('records without mq-id are identified by position: 10 distinct effects, a redelivery absorbed', async () => {
    const topic = uniqueName('no-id');
    await broker().ensureTopic(topic, { partitions: 1 });
    const producer = plainKafka(url).producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9].map((n) => ({ value: JSON.stringify({ n }) })),
    });
    await producer.disconnect();
    const group = uniqueName('g');
    const store = new MemoryIdempotencyStore();
    const { effects, deliveries, handler } = countingEffects();
    const first = await broker().subscribe(
      { topic, group, order: 'partition', closeTimeoutMs: 200 },
      idempotent(
        async (d: Delivery<{ n: number }>) => {
          await handler(d);
          // The last record's effect is applied, then the consumer dies before its commit.
          if (d.body.n === 9 && d.offset === '10')
            await new Promise((resolve) => d.signal.addEventListener('abort', resolve, { once: true }));
        },
        { store },
      ),
    );
    await waitFor(() => deliveries.length === 11);
    await first.close();
    const again = new Collector();
    const second = await broker().subscribe(
      { topic, group, order: 'partition' },
      idempotent(again.handler(), { store, onDuplicate: (d) => again.deliveries.push(d) }),
    );
    const [redelivered] = await again.waitForCount(1);
    await second.close();
    expect(redelivered?.id).toBe(`${topic}-0-10`);
    expect(redelivered?.idOrigin).toBe('position');
    expect(new Set(deliveries.map((d) => d.id)).size).toBe(11);
    expect(effects.get(9)).toBe(2); // two records with the same body
    expect([...effects.values()].reduce((a, b) => a + b, 0)).toBe(11);
  });

  it('a tag set by a plain producer in mq-tag filters as mqkit tags do', async () => {
    const topic = uniqueName('kafka-tag');
    await broker().ensureTopic(topic, { partitions: 1 });
    const paid = new Collector();
    await broker().subscribe({ topic, group: uniqueName('paid'), tags: ['paid'] }, paid.handler());
    const producer = plainKafka(url).producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: [
        { value: '{"n":1}', headers: { 'mq-tag': 'created' } },
        { value: '{"n":2}', headers: { 'mq-tag': 'paid' } },
        { value: '{"n":3}', headers: { 'mq-tag': 'paid' } },
      ],
    });
    await producer.disconnect();
    await paid.waitForCount(2);
    expect(paid.bodies).toEqual([{ n: 2 }, { n: 3 }]);
  });
});

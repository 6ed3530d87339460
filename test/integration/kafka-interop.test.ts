import kafkajs from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { connect, partitionForKey } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';
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
});

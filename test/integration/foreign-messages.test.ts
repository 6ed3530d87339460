import type { ChannelModel, GetMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Delivery, type Subscription } from '../../src/index.js';
import { idempotent, MemoryIdempotencyStore } from '../../src/patterns/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { brokerForSuite, plainKafka } from './kafka-helpers.js';
import { rawConnection } from './rabbitmq-helpers.js';

/**
 * Services migrating to mqkit keep their other clients for a while: messages published by plain
 * amqplib and kafkajs, without mqkit's headers, must each be handled (or dead-lettered with a
 * reason) exactly as often as the broker delivers them, and `idempotent()` must never merge two.
 */

/** An idempotent handler that counts effects per body `n`. */
function countingEffects() {
  const effects = new Map<number, number>();
  const deliveries: Delivery<{ n: number }>[] = [];
  const handler = idempotent<{ n: number }>(
    (d) => {
      deliveries.push(d);
      effects.set(d.body.n, (effects.get(d.body.n) ?? 0) + 1);
    },
    { store: new MemoryIdempotencyStore() },
  );
  return { effects, deliveries, handler };
}

describe('rabbitmq: messages from plain amqplib', () => {
  let broker: Broker;
  let raw: ChannelModel;
  const subscriptions: Subscription[] = [];

  beforeAll(async () => {
    broker = await connect(inject('amqpUrl'));
    raw = await rawConnection(inject('amqpUrl'));
  });

  afterAll(async () => {
    await Promise.all(subscriptions.map((s) => s.close({ timeoutMs: 1000 })));
    await broker?.close();
    await raw?.close();
  });

  it('10 messages without messageId, published in one burst, are 10 effects through idempotent()', async () => {
    const topic = uniqueName('no-id');
    await broker.ensureTopic(topic);
    const { effects, deliveries, handler } = countingEffects();
    subscriptions.push(await broker.subscribe({ topic, group: 'g', order: 'concurrent' }, handler));
    const channel = await raw.createConfirmChannel();
    // Same body twice (n 9): two messages all the same, not one.
    for (const n of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
      channel.publish(topic, '', Buffer.from(JSON.stringify({ n })));
    await channel.waitForConfirms();
    await waitFor(() => deliveries.length === 11, { message: () => `${deliveries.length} of 11 handled` });
    expect(new Set(deliveries.map((d) => d.id)).size).toBe(11);
    expect(deliveries.every((d) => d.idOrigin === 'delivery')).toBe(true);
    expect([...effects.entries()].sort((a, b) => a[0] - b[0])).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
      [5, 1],
      [6, 1],
      [7, 1],
      [8, 1],
      [9, 2],
    ]);
    await channel.close();
  });

  it('a tag set only as the routing key reaches the tagged group as its tag, retried copies included', async () => {
    const topic = uniqueName('routing-tag');
    await broker.ensureTopic(topic);
    const paid = new Collector<{ n: number }>();
    let failed = false;
    subscriptions.push(
      await broker.subscribe(
        {
          topic,
          group: 'paid',
          tags: ['paid'],
          order: 'concurrent',
          retry: { attempts: 3, backoff: { initialMs: 10, maxMs: 10 } },
        },
        (d: Delivery<{ n: number }>) => {
          if (d.body.n === 2 && !failed) {
            failed = true;
            throw new Error('once');
          }
          paid.deliveries.push(d);
        },
      ),
    );
    const channel = await raw.createConfirmChannel();
    channel.publish(topic, 'paid', Buffer.from('{"n":1}'), { messageId: 'm1' });
    channel.publish(topic, 'paid', Buffer.from('{"n":2}'));
    await channel.waitForConfirms();
    await paid.waitForCount(2);
    expect(paid.deliveries.map((d) => d.tag)).toEqual(['paid', 'paid']);
    const retried = paid.deliveries.find((d) => d.body.n === 2);
    expect(retried?.attempt).toBe(2);
    expect(retried?.idOrigin).toBe('delivery'); // the retry copy kept the id given on first delivery
    await channel.close();
  });

  it('text, bytes and broken JSON: handled as text and bytes, or dead-lettered with the reason', async () => {
    const topic = uniqueName('bodies');
    await broker.ensureTopic(topic);
    const got = new Collector();
    subscriptions.push(await broker.subscribe({ topic, group: 'g' }, got.handler()));
    const dlq = `${topic}.g.dlq`;
    const channel = await raw.createConfirmChannel();
    channel.publish(topic, '', Buffer.from('plain words'), { contentType: 'text/plain' });
    channel.publish(topic, '', Buffer.from([0, 1, 255]), { contentType: 'application/octet-stream' });
    channel.publish(topic, '', Buffer.from('{"broken'), { messageId: 'broken-1' });
    await channel.waitForConfirms();
    await got.waitForCount(2);
    expect(got.bodies).toContainEqual('plain words');
    expect(
      got.bodies.some((b) => b instanceof Uint8Array && Buffer.from(b).equals(Buffer.from([0, 1, 255]))),
    ).toBe(true);
    const reader = await raw.createChannel();
    const dead = await waitFor(async () => (await reader.get(dlq, { noAck: true })) || undefined, {
      message: 'nothing in the dead-letter queue',
    });
    expect(dead.content.toString()).toBe('{"broken');
    expect(dead.properties.messageId).toBe('broken-1');
    expect(dead.properties.headers).toMatchObject({ 'mq-error-code': 'DECODE', 'mq-original-topic': topic });
    await channel.close();
    await reader.close();
  });

  it('a redelivered message counts its attempt and, with an id, is one effect', async () => {
    const topic = uniqueName('redelivered');
    await broker.ensureTopic(topic);
    const options = { topic, group: 'g', order: 'concurrent' as const, closeTimeoutMs: 200 };
    const store = new MemoryIdempotencyStore();
    let started = 0;
    const first = await broker.subscribe(
      options,
      idempotent(
        async (d) => {
          started++;
          // Never finishes on its own: closing gives up on it, so the broker redelivers it.
          await new Promise((resolve) => d.signal.addEventListener('abort', resolve, { once: true }));
          throw new Error('aborted');
        },
        { store },
      ),
    );
    const channel = await raw.createConfirmChannel();
    channel.publish(topic, '', Buffer.from('{"n":1}'), { messageId: 'legacy-1' });
    await channel.waitForConfirms();
    await waitFor(() => started === 1);
    await first.close();
    const { deliveries, handler } = countingEffects();
    const again = await broker.subscribe(options, idempotent(handler, { store }));
    subscriptions.push(again);
    await waitFor(() => deliveries.length === 1);
    expect(deliveries[0]?.id).toBe('legacy-1');
    expect(deliveries[0]?.attempt).toBe(2); // classic queue: the redelivered flag counts
    await channel.close();
  });

  it('a plain amqplib consumer reads a dead letter mqkit wrote, with its reason', async () => {
    const topic = uniqueName('dl-out');
    await broker.ensureTopic(topic);
    subscriptions.push(
      await broker.subscribe({ topic, group: 'g', retry: { attempts: 1 } }, () => {
        throw new Error('out of stock');
      }),
    );
    const { id } = await broker.producer().send({ topic, key: 'k', body: { n: 1 } });
    const reader = await raw.createChannel();
    const dead = await waitFor(
      async () => (await reader.get(`${topic}.g.dlq`, { noAck: true })) || undefined,
    );
    const m = dead as GetMessage;
    expect(m.properties.messageId).toBe(id);
    expect(m.properties.headers).toMatchObject({
      'mq-error-code': 'HANDLER',
      'mq-error-message': 'out of stock',
      'mq-original-group': 'g',
      'mq-attempt': '1',
    });
    await reader.close();
  });
});

describe('kafka: records from plain kafkajs', () => {
  const url = inject('kafkaUrl');
  const broker = brokerForSuite(url);

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

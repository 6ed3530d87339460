import type { ChannelModel, ConsumeMessage, GetMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Delivery, type Subscription } from '../../src/index.js';
import { idempotent, MemoryIdempotencyStore } from '../../src/patterns/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { countingEffects } from './counting-effects.js';
import { rawConnection } from './rabbitmq-helpers.js';

describe('rabbitmq: interop with plain amqplib', () => {
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

  it('a plain amqplib consumer bound to the topic exchange reads mqkit messages', async () => {
    const topic = uniqueName('interop');
    await broker.ensureTopic(topic);
    const channel = await raw.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, topic, '#');
    const got: ConsumeMessage[] = [];
    await channel.consume(queue, (m) => m && got.push(m), { noAck: true });

    const sent = await broker.producer().send({
      topic,
      body: { order: 42, item: '订单' },
      key: 'customer-7',
      tag: 'created',
      headers: { 'x-trace': 'abc' },
    });
    await waitFor(() => got.length === 1, { message: 'plain consumer got nothing' });
    const m = got[0] as ConsumeMessage;
    expect(JSON.parse(m.content.toString('utf8'))).toEqual({ order: 42, item: '订单' });
    expect(m.fields.exchange).toBe(topic);
    expect(m.fields.routingKey).toBe('created');
    expect(m.properties.messageId).toBe(sent.id);
    expect(m.properties.contentType).toBe('application/json');
    expect(m.properties.deliveryMode).toBe(2);
    expect(Math.abs(m.properties.timestamp - Date.now() / 1000)).toBeLessThan(600);
    expect(m.properties.headers).toMatchObject({
      'mq-key': 'customer-7',
      'mq-tag': 'created',
      'x-trace': 'abc',
    });
    await channel.close();
  });

  it('mqkit consumes what plain amqplib publishes, tags filtered in the broker', async () => {
    const topic = uniqueName('interop');
    await broker.ensureTopic(topic);
    const all = new Collector<unknown>();
    const paid = new Collector<unknown>();
    subscriptions.push(await broker.subscribe({ topic, group: 'all' }, all.handler()));
    subscriptions.push(await broker.subscribe({ topic, group: 'paid', tags: ['paid'] }, paid.handler()));

    const channel = await raw.createConfirmChannel();
    channel.publish(topic, '', Buffer.from(JSON.stringify({ n: 1 })), {
      messageId: 'plain-1',
      contentType: 'application/json',
      headers: { 'x-origin': 'legacy', 'mq-key': 'k1', 'x-number': 7 },
    });
    // No properties at all: the body is read as JSON.
    channel.publish(topic, '', Buffer.from(JSON.stringify({ n: 2 })));
    channel.publish(topic, 'paid', Buffer.from('{"n":3}'), {
      messageId: 'plain-3',
      headers: { 'mq-tag': 'paid' },
    });
    await channel.waitForConfirms();

    await all.waitForCount(3);
    const first = all.deliveries.find((d) => d.id === 'plain-1');
    expect(first?.body).toEqual({ n: 1 });
    expect(first?.key).toBe('k1');
    expect(first?.headers).toEqual({ 'x-origin': 'legacy', 'x-number': '7' });
    expect(first?.attempt).toBe(1);
    expect(all.bodies).toContainEqual({ n: 2 });
    const [p] = await paid.waitForCount(1);
    expect(p?.id).toBe('plain-3');
    expect(p?.tag).toBe('paid');
    await channel.close();
  });

  // Services migrating to mqkit keep their other clients for a while: messages they publish
  // without mqkit's headers are each handled (or dead-lettered with a reason) as often as the
  // broker delivers them, and idempotent() never merges two.
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

import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
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
});

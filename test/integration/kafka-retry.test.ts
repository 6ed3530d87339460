import { describe, expect, inject, it } from 'vitest';
import type { Delivery } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { brokerForSuite, createSmallTopic, plainKafka, readPlain } from './kafka-helpers.js';

describe('kafka: retry, dead letter, delay and broadcast topics and groups', () => {
  const url = inject('kafkaUrl');
  const broker = brokerForSuite(url);

  it('order concurrent retries through <topic>.<group>.retry; the dead letter records the error; a plain consumer reads both', async () => {
    const topic = uniqueName('retry');
    await broker().ensureTopic(topic, { partitions: 2 });
    const group = uniqueName('billing'); // Kafka group ids are cluster-wide: one per test
    await broker().ensureTopic(`${topic}.${group}.dlq`); // so that the plain consumer can subscribe now
    const seen: Delivery<{ poison: boolean }>[] = [];
    await broker().subscribe<{ poison: boolean }>(
      {
        topic,
        group,
        order: 'concurrent',
        concurrency: 2,
        retry: { attempts: 3, backoff: { initialMs: 100, maxMs: 200 } },
      },
      (d) => {
        seen.push(d);
        if (d.body.poison) throw new TypeError('card declined');
      },
    );
    const sent = await broker()
      .producer()
      .send({ topic, key: 'p', body: { poison: true }, headers: { 'x-origin': 'test' } });

    const records = await readPlain(url, [`${topic}.${group}.retry`, `${topic}.${group}.dlq`], (r) => {
      return (
        r.some((x) => x.topic.endsWith('.dlq')) && r.filter((x) => x.topic.endsWith('.retry')).length >= 2
      );
    });
    // Every delivery reports the message's own position, the retried ones included.
    expect(seen.map((d) => [d.attempt, d.id, d.partition, d.offset])).toEqual(
      [1, 2, 3].map((attempt) => [attempt, sent.id, sent.partition, sent.offset]),
    );
    const retries = records.filter((r) => r.topic.endsWith('.retry'));
    expect(retries.map((r) => r.headers['mq-attempt'])).toEqual(['2', '3']);
    for (const r of retries) {
      expect(r.key).toBe('p');
      expect(JSON.parse(r.value?.toString() ?? '')).toEqual({ poison: true });
      expect(r.headers).toMatchObject({
        'mq-id': sent.id,
        'content-type': 'application/json',
        'x-origin': 'test',
        'mq-original-partition': String(sent.partition),
        'mq-original-offset': sent.offset,
      });
      expect(Number(r.headers['mq-timestamp'])).toBeGreaterThan(0);
      expect(r.headers['mq-deliver-at']).toBeUndefined(); // delay headers are removed on delivery
      expect(r.headers['mq-target-topic']).toBeUndefined();
    }
    const dead = records.find((r) => r.topic.endsWith('.dlq'));
    expect(dead?.key).toBe('p');
    expect(dead?.headers).toMatchObject({
      'mq-id': sent.id,
      'x-origin': 'test',
      'mq-error-code': 'HANDLER',
      'mq-error-name': 'TypeError',
      'mq-error-message': 'card declined',
      'mq-original-topic': topic,
      'mq-original-group': group,
      'mq-original-partition': String(sent.partition),
      'mq-original-offset': sent.offset,
      'mq-attempt': '3',
    });
    expect(Number.isNaN(Date.parse(dead?.headers['mq-failed-at'] ?? ''))).toBe(false);
  });

  it('order key retries in place: the failing key waits, other keys keep flowing', async () => {
    const topic = uniqueName('hold');
    await broker().ensureTopic(topic, { partitions: 1 });
    const handled: string[] = [];
    let otherKeyDone = false;
    await broker().subscribe<{ n: string }>(
      {
        topic,
        group: uniqueName('g'),
        order: 'key',
        concurrency: 2,
        retry: { attempts: 50, backoff: { initialMs: 50 } },
      },
      (d) => {
        // a1 fails until b1 was handled: b1 can only get through if a1 does not block it.
        if (d.body.n === 'a1' && !otherKeyDone) throw new Error('not yet');
        if (d.body.n === 'b1') otherKeyDone = true;
        handled.push(`${d.body.n}@${d.attempt}`);
      },
    );
    await broker()
      .producer()
      .sendBatch([
        { topic, key: 'a', body: { n: 'a1' } },
        { topic, key: 'a', body: { n: 'a2' } },
        { topic, key: 'b', body: { n: 'b1' } },
      ]);
    await waitFor(() => handled.length === 3, { message: () => `handled ${handled}` });
    expect(handled[0]).toBe('b1@1');
    expect(handled[1]).toMatch(/^a1@([2-9]|[1-4]\d)$/);
    expect(handled[2]).toBe('a2@1');
  });

  it('a delayed message waits in a delay-tier topic with its target and due time, then reaches its topic', async () => {
    const topic = uniqueName('later');
    await broker().ensureTopic(topic, { partitions: 1 });
    const got = new Collector<{ n: number }>();
    let receivedAt = 0;
    await broker().subscribe(
      { topic, group: uniqueName('g') },
      got.handler(() => {
        receivedAt = Date.now();
      }),
    );
    const sentAt = Date.now();
    const sent = await broker()
      .producer()
      .send({ topic, key: 'k', body: { n: 1 }, delayMs: 2_500 });
    // 2.5 s: the first hop is the 2 s tier.
    const tier = await readPlain(url, ['mq.delay.2s'], (r) => r.some((x) => x.headers['mq-id'] === sent.id));
    const first = tier.find((x) => x.headers['mq-id'] === sent.id);
    expect(first?.key).toBe('k');
    expect(first?.headers['mq-target-topic']).toBe(topic);
    expect(Number(first?.headers['mq-deliver-at'])).toBeGreaterThanOrEqual(sentAt + 2_500);
    expect(Number(first?.headers['mq-timestamp'])).toBeGreaterThanOrEqual(sentAt);
    const [delivered] = await got.waitForCount(1);
    expect(receivedAt).toBeGreaterThanOrEqual(Number(first?.headers['mq-deliver-at'])); // never early
    expect(delivered).toMatchObject({ id: sent.id, key: 'k', body: { n: 1 }, headers: {} });
  });

  it('a delayed record its target refuses for good is set aside in mq.delay.undeliverable; the ones behind it arrive', async () => {
    const topic = uniqueName('small');
    await createSmallTopic(url, topic, 1000);
    const got = new Collector<{ text: string }>();
    await broker().subscribe({ topic, group: uniqueName('g') }, got.handler());
    const producer = broker().producer();
    // Same key, so both wait in the same tier partition, the refused one first.
    const big = await producer.send({ topic, key: 'k', body: { text: 'x'.repeat(5000) }, delayMs: 200 });
    const small = await producer.send({ topic, key: 'k', body: { text: 'fits' }, delayMs: 200 });
    await got.waitForCount(1, 60_000);
    expect(got.deliveries.map((d) => d.id)).toEqual([small.id]);
    const aside = await readPlain(url, ['mq.delay.undeliverable'], (r) =>
      r.some((x) => x.headers['mq-id'] === big.id),
    );
    expect(aside.find((x) => x.headers['mq-id'] === big.id)?.headers).toMatchObject({
      'mq-original-topic': topic,
      'mq-original-group': 'mq.delay.forwarder',
    });
  }, 90_000);

  it('a broadcasting instance has a group of its own, deleted when it closes', async () => {
    const topic = uniqueName('bcast');
    await broker().ensureTopic(topic, { partitions: 2 });
    const got = new Collector();
    const sub = await broker().subscribe({ topic, group: 'cache', mode: 'broadcasting' }, got.handler());
    expect(sub.group).toMatch(/^cache\./);
    await broker().producer().send({ topic, body: 1 });
    await got.waitForCount(1);
    const admin = plainKafka(url).admin();
    await admin.connect();
    try {
      const live = await admin.describeGroups([sub.group]);
      expect(live.groups[0]?.members).toHaveLength(1);
      await sub.close();
      const { groups } = await admin.listGroups();
      expect(groups.map((g) => g.groupId)).not.toContain(sub.group);
    } finally {
      await admin.disconnect();
    }
  });
});

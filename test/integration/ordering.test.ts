import { describe, expect, inject, it } from 'vitest';
import { connect, type Delivery, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';

const brokers = [
  ['memory', () => 'memory://ordering'],
  ['rabbitmq', () => inject('amqpUrl')],
  ['kafka', () => inject('kafkaUrl')],
] as const;

describe.each(brokers)('ordered partitions on %s', (_kind, url) => {
  it('20,000 messages over 200 keys, 3 consumers with one joining and one leaving: none lost, none out of order', async () => {
    const broker = await connect(url());
    const topic = uniqueName('ordered');
    await broker.ensureTopic(topic, { partitions: 6 });
    const keys = 200;
    const perKey = 100;
    const last = new Map<string, number>();
    const seen = new Set<string>();
    let violations = 0;
    let duplicates = 0;
    const handler = async (d: Delivery<{ seq: number }>) => {
      if (seen.has(d.id)) {
        duplicates++;
        return;
      }
      if (d.body.seq !== (last.get(d.key as string) ?? -1) + 1) violations++;
      last.set(d.key as string, d.body.seq);
      seen.add(d.id);
      if (d.body.seq % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    };
    const options = { topic, group: uniqueName('ordered'), order: 'key' as const, concurrency: 8 };
    const members: Subscription[] = [
      await broker.subscribe(options, handler),
      await broker.subscribe(options, handler),
    ];
    const producer = broker.producer();
    for (let seq = 0; seq < perKey; seq++) {
      await producer.sendBatch(
        Array.from({ length: keys }, (_, k) => ({ topic, key: `key-${k}`, body: { seq } })),
      );
      if (seq === 30) members.push(await broker.subscribe(options, handler));
      if (seq === 60) await members.shift()?.close();
    }
    await waitFor(() => seen.size === keys * perKey, {
      timeoutMs: 180_000,
      message: () =>
        `received ${seen.size} of ${keys * perKey} (${duplicates} duplicates, ${violations} violations)`,
    });
    expect(violations).toBe(0);
    expect([...last.values()].every((seq) => seq === perKey - 1)).toBe(true);
    await Promise.all(members.map((m) => m.close()));
    await broker.close();
  }, 240_000);

  it('a failing message holds up only its own key, and once dead-lettered the key moves on', async () => {
    const broker = await connect(url());
    const topic = uniqueName('hold');
    await broker.ensureTopic(topic, { partitions: 1 });
    const dead = new Collector();
    const group = uniqueName('g');
    await broker.ensureTopic(`${topic}.${group}.dlq`, { partitions: 1 });
    const dlq = await broker.subscribe(
      { topic: `${topic}.${group}.dlq`, group: uniqueName('reader') },
      dead.handler(),
    );
    const order: string[] = [];
    let poisonAttempts = 0;
    /** How many times the poison message had failed when each other message ran. */
    const failuresSeen = new Map<string, number>();
    const sub = await broker.subscribe(
      {
        topic,
        group,
        order: 'key',
        concurrency: 4,
        retry: { attempts: 3, backoff: { initialMs: 200, maxMs: 200 } },
      },
      (d: Delivery<{ key: string; seq: number; poison?: boolean }>) => {
        if (d.body.poison) {
          poisonAttempts++;
          throw new Error('poison');
        }
        failuresSeen.set(`${d.body.key}${d.body.seq}`, poisonAttempts);
        order.push(`${d.body.key}${d.body.seq}`);
      },
    );
    const producer = broker.producer();
    await producer.send({ topic, key: 'a', body: { key: 'a', seq: 0, poison: true } });
    await producer.send({ topic, key: 'a', body: { key: 'a', seq: 1 } });
    for (let seq = 0; seq < 5; seq++) await producer.send({ topic, key: 'b', body: { key: 'b', seq } });
    // The dead letter is published before a1 runs, but the DLQ reader gets it asynchronously.
    await waitFor(() => order.includes('a1') && dead.deliveries.length === 1, { timeoutMs: 60_000 });
    expect(poisonAttempts).toBe(3);
    expect(dead.deliveries).toHaveLength(1);
    expect(order.filter((x) => x.startsWith('a'))).toEqual(['a1']);
    // b flowed while a's first message was still retrying; a1 waited until a0 was dead-lettered.
    expect(failuresSeen.get('b0')).toBeLessThan(3);
    expect(failuresSeen.get('a1')).toBe(3);
    expect(order.filter((x) => x.startsWith('b'))).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
    await sub.close();
    await dlq.close();
    await broker.close();
  }, 120_000);
});

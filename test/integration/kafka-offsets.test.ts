import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { partitionForKey } from '../../src/core/partitioner.js';
import { type Broker, connect } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { plainKafka } from './kafka-helpers.js';

describe('kafka: committed offsets and backlog', () => {
  const url = inject('kafkaUrl');
  let broker: Broker;
  let admin: ReturnType<ReturnType<typeof plainKafka>['admin']>;

  /** The group's committed offsets on `topic` as any Kafka tool sees them (-1: none). */
  async function committed(group: string, topic: string): Promise<number[]> {
    const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (offsets?.partitions ?? []).sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset));
  }

  /** Keys that land on each partition of a `partitions`-partition topic, `counts[p]` of them. */
  function keysFor(counts: number[]): string[] {
    const keys: string[] = [];
    const wanted = [...counts];
    for (let i = 0; wanted.some((n) => n > 0); i++) {
      const key = `k${i}`;
      const p = partitionForKey(key, counts.length);
      if ((wanted[p] ?? 0) > 0) {
        wanted[p] = (wanted[p] ?? 0) - 1;
        keys.push(key);
      }
    }
    return keys;
  }

  beforeAll(async () => {
    broker = await connect(url);
    admin = plainKafka(url).admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.disconnect();
    await broker?.close();
  });

  it('never commits past a message whose handler has not finished, even when later ones did', async () => {
    const topic = uniqueName('held');
    const group = uniqueName('g');
    await broker.ensureTopic(topic, { partitions: 1 });
    const producer = broker.producer();
    await producer.sendBatch(Array.from({ length: 5 }, (_, i) => ({ topic, body: { i } })));
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const finished = new Set<number>();
    const sub = await broker.subscribe<{ i: number }>(
      { topic, group, order: 'concurrent', concurrency: 8 },
      async (d) => {
        if (d.body.i === 5) await gate;
        finished.add(d.body.i);
      },
    );
    await waitFor(() => finished.size === 5);
    await waitFor(async () => (await committed(group, topic))[0] === 5, {
      message: 'first 5 never committed',
    });

    await producer.sendBatch(Array.from({ length: 15 }, (_, k) => ({ topic, body: { i: 5 + k } })));
    await waitFor(() => finished.size === 19, { message: () => `${finished.size} of 19 finished` });
    // Offset 5 is still being handled; close gives up waiting for it and commits what it may.
    await sub.close({ timeoutMs: 100 });
    expect(await committed(group, topic)).toEqual([5]);
    release();

    // The held message, and those after it, are delivered again to the group.
    const again = new Collector<{ i: number }>();
    await broker.subscribe({ topic, group, order: 'partition' }, again.handler());
    await again.waitForCount(15);
    expect(again.bodies.map((b) => b.i)).toEqual(Array.from({ length: 15 }, (_, k) => 5 + k));
  });

  it('close commits what finished', async () => {
    // Periodic commits off, so only close can have committed.
    const lazy = await connect(url, { kafka: { consumer: { commitIntervalMs: 3_600_000 } } });
    try {
      const topic = uniqueName('close');
      const group = uniqueName('g');
      await lazy.ensureTopic(topic, { partitions: 2 });
      await lazy.producer().sendBatch(keysFor([6, 4]).map((key, i) => ({ topic, key, body: { i } })));
      const got = new Collector();
      const sub = await lazy.subscribe({ topic, group, concurrency: 4 }, got.handler());
      await got.waitForCount(10);
      expect(await committed(group, topic)).toEqual([-1, -1]);
      await sub.close();
      expect(await committed(group, topic)).toEqual([6, 4]);
    } finally {
      await lazy.close();
    }
  });

  it('backlog is end offset minus committed offset per partition; a group that never read has it all', async () => {
    const topic = uniqueName('backlog');
    await broker.ensureTopic(topic, { partitions: 3 });
    const producer = broker.producer();
    await producer.sendBatch(keysFor([4, 2, 0]).map((key) => ({ topic, key, body: key })));

    const idle = uniqueName('never-read');
    const reader = uniqueName('reader'); // Kafka group ids are cluster-wide: one per test
    const before = await broker.backlog(topic, idle);
    expect(before).toEqual({
      topic,
      group: idle,
      total: 6,
      partitions: [
        { partition: 0, backlog: 4, end: '4', consumers: 0 },
        { partition: 1, backlog: 2, end: '2', consumers: 0 },
        { partition: 2, backlog: 0, end: '0', consumers: 0 },
      ],
    });

    const got = new Collector();
    const sub = await broker.subscribe({ topic, group: reader }, got.handler());
    await got.waitForCount(6);
    await sub.close();
    await producer.sendBatch(keysFor([1, 0, 3]).map((key) => ({ topic, key, body: key })));
    const after = await broker.backlog(topic, reader);
    expect(after.partitions).toEqual([
      { partition: 0, backlog: 1, committed: '4', end: '5', consumers: 0 },
      { partition: 1, backlog: 0, committed: '2', end: '2', consumers: 0 },
      { partition: 2, backlog: 3, end: '3', consumers: 0 },
    ]);
    expect(after.total).toBe(4);
    expect(await broker.backlog(uniqueName('missing'), reader)).toMatchObject({ total: 0, partitions: [] });
  });

  it("startFrom 'latest' reads a partition added after it joined from that partition's start", async () => {
    // Metadata refreshed every second, so the member notices the new partition quickly.
    const fast = await connect(url, { kafka: { metadataMaxAgeMs: 1000 } });
    try {
      const topic = uniqueName('grow');
      await fast.ensureTopic(topic, { partitions: 1 });
      await fast.producer().send({ topic, key: 'before', body: 'before' }); // before the subscription
      const got = new Collector<string>();
      const sub = await fast.subscribe(
        { topic, group: uniqueName('latest'), startFrom: 'latest' },
        got.handler(),
      );
      await fast.ensureTopic(topic, { partitions: 2 });
      const [onNew] = keysFor([0, 1]);
      // Written to partition 1 before the member is assigned it: it must not be skipped.
      await fast.producer().send({ topic, key: onNew as string, body: 'after' });
      await waitFor(() => got.bodies.includes('after'), { timeoutMs: 60_000 });
      expect(got.bodies).not.toContain('before');
      await sub.close();
    } finally {
      await fast.close();
    }
  }, 90_000);
});

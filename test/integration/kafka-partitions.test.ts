import kafkajs, { type PartitionMetadata } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { partitionForKey } from '../../src/core/partitioner.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';
import { brokerForSuite, plainKafka } from './kafka-helpers.js';

const KEYS = [
  'order-1',
  'order-42',
  'a',
  '',
  'customer:1234567890',
  '订单-✓',
  'ünïcødé',
  '🚀',
  'x'.repeat(257),
  ...Array.from({ length: 200 }, (_, i) => `key-${i * 7919}`),
];

function metadata(count: number): PartitionMetadata[] {
  return Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
  }));
}

describe('kafka: partitions', () => {
  const url = inject('kafkaUrl');
  const broker = brokerForSuite(url);

  it("kafkajs's DefaultPartitioner (Java murmur2) and partitionForKey pick the same partition", () => {
    const partitioner = kafkajs.Partitioners.DefaultPartitioner();
    for (const count of [1, 2, 3, 4, 7, 12, 64]) {
      const partitionMetadata = metadata(count);
      for (const key of KEYS) {
        const chosen = partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
        expect(chosen, `key ${JSON.stringify(key)} over ${count}`).toBe(partitionForKey(key, count));
      }
    }
  });

  it('a keyed send lands on partitionForKey(key, partitions), where a plain kafkajs producer puts it too', async () => {
    const topic = uniqueName('keys');
    await broker().ensureTopic(topic, { partitions: 5 });
    const producer = broker().producer();
    const plain = plainKafka(url).producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
    await plain.connect();
    try {
      for (const key of KEYS.slice(0, 30)) {
        const sent = await producer.send({ topic, key, body: { key } });
        expect(sent.partition).toBe(partitionForKey(key, 5));
        const [stored] = await plain.send({ topic, messages: [{ key, value: 'plain' }] });
        expect(stored?.partition).toBe(sent.partition);
      }
    } finally {
      await plain.disconnect();
    }
  });

  it('ensureTopic raises the partition count, never lowers it, and keys then spread over the new count', async () => {
    const topic = uniqueName('grow');
    await broker().ensureTopic(topic, { partitions: 2 });
    const producer = broker().producer();
    for (const key of KEYS.slice(0, 10)) {
      expect((await producer.send({ topic, key, body: 1 })).partition).toBe(partitionForKey(key, 2));
    }

    await broker().ensureTopic(topic, { partitions: 6 });
    await broker().ensureTopic(topic, { partitions: 3 }); // lower: ignored
    await broker().ensureTopic(topic); // no count: ignored
    const admin = plainKafka(url).admin();
    await admin.connect();
    try {
      // Any broker() answers; one may take a moment to learn of the new partitions.
      await waitFor(async () => {
        const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
        return topics[0]?.partitions.length === 6;
      });
    } finally {
      await admin.disconnect();
    }
    const backlog = await broker().backlog(topic, 'nobody');
    expect(backlog.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(backlog.total).toBe(10);

    // The same producer, on the same connection, sees the new partitions at once.
    for (const key of KEYS.slice(0, 30)) {
      expect((await producer.send({ topic, key, body: 2 })).partition).toBe(partitionForKey(key, 6));
    }
  });
});

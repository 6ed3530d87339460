import { afterEach, describe, expect, it } from 'vitest';
import { KafkaBroker } from '../../src/adapters/kafka/broker.js';
import type {
  AdminClient,
  ConsumerClient,
  ConsumerConfig,
  ConsumerListener,
  FetchedRecord,
  KafkaClient,
  ProducerClient,
  TopicPartition,
} from '../../src/adapters/kafka/client.js';
import { type KafkaBrokerOptions, resolveKafkaOptions } from '../../src/adapters/kafka/options.js';
import { ConnectionError } from '../../src/core/errors.js';
import { EventHub } from '../../src/core/events.js';
import { silentLogger } from '../../src/core/logger.js';
import type { Delivery, SubscribeOptions } from '../../src/index.js';
import { waitFor } from '../../src/testing/wait-for.js';

/**
 * The subscription's offset, rebalance and crash handling, driven through the client seam by a
 * fake consumer: the test plays the part of the Kafka client (joins, fetched batches, revokes).
 */
const TOPIC = 'orders';
const P0: TopicPartition = { topic: TOPIC, partition: 0 };

class FakeConsumer implements ConsumerClient {
  listener: ConsumerListener | undefined;
  readonly commits: { partition: number; offset: number }[] = [];
  readonly seeks: { partition: number; offset: number }[] = [];
  readonly paused = new Set<number>();
  stopped = false;

  constructor(
    readonly config: ConsumerConfig,
    private readonly initial: readonly TopicPartition[],
  ) {}

  async run(listener: ConsumerListener): Promise<void> {
    this.listener = listener;
    listener.assigned(this.initial);
  }
  pause(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) this.paused.add(tp.partition);
  }
  resume(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) this.paused.delete(tp.partition);
  }
  seek({ partition, offset }: TopicPartition & { offset: number }): void {
    this.seeks.push({ partition, offset });
  }
  async commit(offsets: readonly (TopicPartition & { offset: number })[]): Promise<void> {
    for (const { partition, offset } of offsets) this.commits.push({ partition, offset });
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }

  /** Hands records `from`..`to` of partition 0 to the subscription, as a fetch would. */
  fetch(from: number, to: number): Promise<number | undefined> | number | undefined {
    const records: FetchedRecord[] = [];
    for (let offset = from; offset <= to; offset++) records.push(record(offset));
    return this.listener?.batch({ ...P0, records });
  }

  lastCommit(): number | undefined {
    return this.commits.at(-1)?.offset;
  }
}

function record(offset: number, key = 'k'): FetchedRecord {
  return {
    offset,
    key,
    value: Buffer.from(JSON.stringify({ n: offset })),
    headers: { 'mq-id': `id-${offset}`, 'content-type': 'application/json' },
    timestamp: Date.now(),
  };
}

const admin: AdminClient = {
  brokerCount: async () => 1,
  partitionCount: async () => 1,
  createTopic: async () => false,
  createPartitions: async () => {},
  waitForTopic: async () => {},
  topicOffsets: async () => [{ partition: 0, low: 0, high: 10 }],
  committedOffsets: async () => new Map(),
  offsetsForTimestamp: async () => new Map([[0, 3]]),
  memberTags: async () => [],
  partitionConsumers: async () => new Map(),
  deleteGroup: async () => {},
};

const producer: ProducerClient = {
  send: async (records) => records.map(() => ({ partition: 0, offset: 0 })),
  disconnect: async () => {},
};

/** Gates handler calls on chosen offsets until released. */
class Gates {
  private readonly open = new Map<number, () => void>();
  private readonly waits = new Map<number, Promise<void>>();
  hold(offset: number): void {
    this.waits.set(
      offset,
      new Promise((resolve) => {
        this.open.set(offset, resolve);
      }),
    );
  }
  release(offset: number): void {
    this.open.get(offset)?.();
  }
  pass(offset: number): Promise<void> | undefined {
    return this.waits.get(offset);
  }
}

describe('kafka subscription through the client seam', () => {
  let broker: KafkaBroker | undefined;
  const consumers: FakeConsumer[] = [];

  afterEach(async () => {
    await broker?.close();
    consumers.length = 0;
  });

  async function subscribe(
    options: Partial<SubscribeOptions>,
    handler: (d: Delivery<{ n: number }>) => Promise<void> | void,
    kafka: KafkaBrokerOptions = {},
  ): Promise<FakeConsumer> {
    const client: KafkaClient = {
      admin,
      connect: async () => {},
      producer: () => producer,
      consumer: (config) => {
        const consumer = new FakeConsumer(config, [P0]);
        consumers.push(consumer);
        return consumer;
      },
      partitionsAdded: () => {},
      closing: () => {},
      close: async () => {},
    };
    broker = new KafkaBroker(
      client,
      resolveKafkaOptions(new URL('kafka://fake:9092'), {
        ...kafka,
        consumer: { commitIntervalMs: 0, ...kafka.consumer },
        delay: { forward: false },
      }),
      silentLogger,
      new EventHub(),
    );
    await broker.subscribe({ topic: TOPIC, group: 'g', ...options }, handler as (d: Delivery) => void);
    return consumers[0] as FakeConsumer;
  }

  it('commits the lowest unfinished offset, never past it', async () => {
    const gates = new Gates();
    gates.hold(0);
    const done: number[] = [];
    const consumer = await subscribe({ order: 'concurrent', concurrency: 4 }, async (d) => {
      await gates.pass(d.body.n);
      done.push(d.body.n);
    });
    expect(await consumer.fetch(0, 4)).toBe(4);
    await waitFor(() => done.length === 4);
    expect(consumer.commits).toEqual([]); // offset 0 is still running
    gates.release(0);
    await waitFor(() => consumer.lastCommit() === 5);
    expect(consumer.commits.every((c) => c.offset <= 5)).toBe(true);
  });

  it('a rejoin that keeps a partition neither delivers its records twice nor loses its place', async () => {
    const gates = new Gates();
    gates.hold(2);
    const handled: number[] = [];
    const consumer = await subscribe({ order: 'partition' }, async (d) => {
      handled.push(d.body.n);
      await gates.pass(d.body.n);
    });
    await consumer.fetch(0, 4);
    await waitFor(() => handled.length === 3);
    consumer.listener?.rebalancing();
    await waitFor(() => consumer.lastCommit() === 2);
    consumer.listener?.assigned([P0]);
    // The client fetches again from the committed offset after a join.
    expect(await consumer.fetch(2, 6)).toBe(6);
    gates.release(2);
    await waitFor(() => handled.length === 7);
    expect(handled).toEqual([0, 1, 2, 3, 4, 5, 6]);
    await waitFor(() => consumer.lastCommit() === 7);
  });

  it('a revoked partition: queued records are dropped, a late finisher commits nothing', async () => {
    const gates = new Gates();
    gates.hold(1);
    const started: number[] = [];
    const done: number[] = [];
    const signals = new Map<number, AbortSignal>();
    const consumer = await subscribe({ order: 'partition' }, async (d) => {
      started.push(d.body.n);
      signals.set(d.body.n, d.signal);
      await gates.pass(d.body.n);
      done.push(d.body.n);
    });
    await consumer.fetch(0, 4);
    await waitFor(() => started.length === 2 && consumer.lastCommit() === 1);
    const before = consumer.commits.length;
    expect(signals.get(1)?.aborted).toBe(false);
    consumer.listener?.assigned([]);
    expect(signals.get(1)?.aborted).toBe(true); // the running handler learns its work is moot
    gates.release(1);
    await waitFor(() => done.includes(1));
    // Were 2 and 3 still queued, the partition's lane would start 2 in the same microtask run
    // that finished 1; a macrotask turn later it has not.
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1]);
    expect(consumer.commits.length).toBe(before);
    await broker?.close();
    expect(consumer.commits.length).toBe(before); // not even on close: it is not ours any more
  });

  it('after a crash, the member starts again from the commits and the old run commits nothing', async () => {
    const gates = new Gates();
    gates.hold(3);
    const handled: number[] = [];
    const consumer = await subscribe({ order: 'partition' }, async (d) => {
      handled.push(d.body.n);
      await gates.pass(d.body.n);
    });
    await consumer.fetch(0, 4);
    await waitFor(() => handled.length === 4 && consumer.lastCommit() === 3);
    consumer.listener?.crashed(new ConnectionError('broker went away'), true);
    gates.release(3);
    consumer.listener?.assigned([P0]);
    expect(await consumer.fetch(3, 5)).toBe(5);
    await waitFor(() => consumer.lastCommit() === 6);
    expect(handled).toEqual([0, 1, 2, 3, 3, 4, 5]);
    const offsets = consumer.commits.map((c) => c.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b)); // never backwards
  });

  it('joins again with a new consumer when the client gives up on a retriable error (kafkajs: no group coordinator found)', async () => {
    const handled: number[] = [];
    const consumer = await subscribe({ order: 'partition' }, (d) => {
      handled.push(d.body.n);
    });
    await consumer.fetch(0, 1);
    await waitFor(() => consumer.lastCommit() === 2);
    // kafkajs counts KafkaJSGroupCoordinatorNotFound as not retriable and does not restart.
    consumer.listener?.crashed(new ConnectionError('Failed to find group coordinator'), false);
    await waitFor(() => consumers.length === 2, { timeoutMs: 10_000 });
    expect(consumer.stopped).toBe(true);
    const again = consumers[1] as FakeConsumer;
    await waitFor(() => again.listener !== undefined);
    expect(await again.fetch(2, 3)).toBe(3);
    await waitFor(() => again.lastCommit() === 4);
    expect(handled).toEqual([0, 1, 2, 3]);
  });

  it('pauses a partition at `prefetch` uncommittable offsets and resumes it at half', async () => {
    const gates = new Gates();
    gates.hold(0);
    const consumer = await subscribe({ order: 'concurrent', concurrency: 10 }, (d) => gates.pass(d.body.n), {
      consumer: { prefetch: 4 },
    });
    await consumer.fetch(0, 5);
    expect(consumer.paused.has(0)).toBe(true);
    gates.release(0);
    await waitFor(() => !consumer.paused.has(0));
  });

  it("startFrom 'latest' and a timestamp seek partitions without a commit and commit that position", async () => {
    const latest = await subscribe({ startFrom: 'latest' }, () => {});
    expect(latest.seeks).toEqual([{ partition: 0, offset: 10 }]);
    expect(latest.commits).toEqual([{ partition: 0, offset: 10 }]);
    await broker?.close();
    consumers.length = 0;
    const byTime = await subscribe({ startFrom: { timestamp: Date.now() - 1000 } }, () => {});
    expect(byTime.seeks).toEqual([{ partition: 0, offset: 3 }]);
  });

  it('close drops queued records, lets running handlers finish, commits, then stops', async () => {
    const gates = new Gates();
    gates.hold(1);
    const started: number[] = [];
    const done: number[] = [];
    const consumer = await subscribe({ order: 'partition' }, async (d) => {
      started.push(d.body.n);
      await gates.pass(d.body.n);
      done.push(d.body.n);
    });
    await consumer.fetch(0, 4);
    await waitFor(() => started.length === 2);
    const closing = broker?.close();
    expect(consumer.paused.has(0)).toBe(true);
    gates.release(1);
    await closing;
    expect(done).toEqual([0, 1]);
    expect(consumer.lastCommit()).toBe(2);
    expect(consumer.stopped).toBe(true);
  });
});

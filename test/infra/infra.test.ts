import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { describe, expect, inject, it, vi } from 'vitest';
import { CODE, RemotingClient } from '../../src/adapters/rocketmq/remoting.js';

/** The value provided by test/infra/global-setup.ts, or a clear failure when it is not configured. */
function provided(key: 'kafkaUrl' | 'amqpUrl' | 'pgUrl' | 'redisUrl' | 'rocketmqUrl'): string {
  const value = inject(key);
  if (!value) throw new Error(`${key} not provided: add 'test/infra/global-setup.ts' to test.globalSetup`);
  return value;
}

/** Checks that every server provided by test/infra/global-setup.ts really answers. */
describe('test infrastructure', () => {
  it('Kafka: creates a 3-partition topic, produces and consumes one message', async () => {
    const url = provided('kafkaUrl');
    expect(url).toMatch(/^kafka:\/\//);
    const kafka = new Kafka({
      clientId: 'mqkit-infra-test',
      brokers: url.replace(/^kafka:\/\//, '').split(','),
      // A 3-node cluster makes kafkajs log transient UNKNOWN_TOPIC_OR_PARTITION retries at ERROR
      // while a new topic propagates; real failures still surface as rejected promises.
      logLevel: logLevel.NOTHING,
    });
    const topic = `mqkit-infra-${randomUUID()}`;
    const admin = kafka.admin();
    const producer = kafka.producer();
    // A short fetch wait keeps disconnect() fast when partitions sit on brokers without data.
    const consumer = kafka.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 250 });
    try {
      await admin.connect();
      // Not waitForLeaders: on a 3-node cluster kafkajs then asks a broker that has not heard
      // of the topic yet and fails on UNKNOWN_TOPIC_OR_PARTITION instead of retrying.
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: 3 }],
        waitForLeaders: false,
      });
      expect(created).toBe(true);
      await vi.waitFor(
        async () => {
          const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
          const partitions = metadata.topics[0]?.partitions ?? [];
          expect(partitions).toHaveLength(3);
          expect(partitions.every((p) => p.leader >= 0)).toBe(true);
        },
        { timeout: 30_000, interval: 200 },
      );

      const value = `hello ${randomUUID()}`;
      await producer.connect();
      await producer.send({ topic, messages: [{ key: 'k', value }] });

      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const received = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 60 s')), 60_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer);
            resolve(message.value?.toString() ?? '');
          },
        });
      });
      expect(received).toBe(value);
      // Stop fetching before the topic goes away, or kafkajs logs UNKNOWN_TOPIC_OR_PARTITION.
      await consumer.disconnect();
      await admin.deleteTopics({ topics: [topic] });
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  it('RabbitMQ: round-trips a message through a temp queue and declares x-consistent-hash', async () => {
    const conn = await connect(provided('amqpUrl'));
    try {
      const channel = await conn.createChannel();
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      const body = `hello ${randomUUID()}`;
      const received = new Promise<string>((resolve) => {
        void channel.consume(
          queue,
          (msg) => {
            if (msg) resolve(msg.content.toString());
          },
          { noAck: true },
        );
      });
      expect(channel.sendToQueue(queue, Buffer.from(body))).toBe(true);
      expect(await received).toBe(body);

      const exchange = `mqkit.infra.test.${randomUUID()}`;
      await channel.assertExchange(exchange, 'x-consistent-hash', { durable: false });
      await channel.deleteExchange(exchange);
      await channel.close();
    } finally {
      await conn.close();
    }
  });

  it('PostgreSQL: answers select 1', async () => {
    const client = new pg.Client({ connectionString: provided('pgUrl') });
    await client.connect();
    try {
      const result = await client.query<{ one: number }>('select 1 as one');
      expect(result.rows[0]?.one).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('Redis: SET/GET of a unique key', async () => {
    const client = new Redis(provided('redisUrl'), { lazyConnect: true });
    await client.connect();
    try {
      const key = `mqkit:infra:${randomUUID()}`;
      expect(await client.set(key, 'v', 'EX', 60)).toBe('OK');
      expect(await client.get(key)).toBe('v');
      await client.del(key);
    } finally {
      client.disconnect();
    }
  });

  it('RocketMQ: creates a topic (broker admin API), sends and receives one tagged message through the proxy', async () => {
    const url = new URL(provided('rocketmqUrl'));
    expect(url.protocol).toBe('rocketmq:');
    const namesrv = url.searchParams.get('namesrv');
    expect(namesrv).toMatch(/^127\.0\.0\.1:\d+$/);
    const topic = `mqkit-infra-${randomUUID()}`;
    const ns = new RemotingClient(namesrv as string, 5000);
    const cluster = JSON.parse(
      ((await ns.request(CODE.getBrokerClusterInfo)).body ?? Buffer.from('{}'))
        .toString()
        .replace(/([{,])(\d+):/g, '$1"$2":'),
    ) as { brokerAddrTable: Record<string, { brokerAddrs: Record<string, string> }> };
    const brokerAddress = Object.values(cluster.brokerAddrTable)[0]?.brokerAddrs['0'] as string;
    const broker = new RemotingClient(brokerAddress, 5000);
    const quiet = { info() {}, warn() {}, error() {}, debug() {} };
    const options = { endpoints: url.host, namespace: '', requestTimeout: 10_000, logger: quiet };
    const producer = new Producer(options);
    const consumer = new SimpleConsumer({
      ...options,
      consumerGroup: `${topic}-group`,
      subscriptions: new Map([[topic, 'infra']]),
      awaitDuration: 2000,
    });
    try {
      const created = await broker.request(CODE.updateAndCreateTopic, {
        topic,
        defaultTopic: 'TBW102',
        readQueueNums: 1,
        writeQueueNums: 1,
        perm: 6,
        topicFilterType: 'SINGLE_TAG',
        topicSysFlag: 0,
        order: false,
        attributes: '+message.type=MIXED',
      });
      expect(created.code).toBe(0);
      await producer.startup();
      await consumer.startup();
      const body = `hello ${randomUUID()}`;
      await producer.send({ topic, tag: 'infra', body: Buffer.from(body) });
      let received: string | undefined;
      await vi.waitFor(
        async () => {
          for (const m of await consumer.receive(1, 10_000)) {
            received = m.body.toString();
            await consumer.ack(m);
          }
          expect(received).toBe(body);
        },
        { timeout: 30_000, interval: 100 },
      );
    } finally {
      await consumer.shutdown().catch(() => {});
      await producer.shutdown().catch(() => {});
      ns.close();
      broker.close();
    }
  });
});

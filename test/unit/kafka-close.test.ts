import type { Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { KafkaBroker } from '../../src/adapters/kafka/broker.js';
import type {
  AdminClient,
  ConsumerConfig,
  ConsumerListener,
  KafkaClient,
  KafkaClientConfig,
  ProducerClient,
} from '../../src/adapters/kafka/client.js';
import { KafkajsAdmin } from '../../src/adapters/kafka/kafkajs/admin.js';
import { KafkajsConsumer } from '../../src/adapters/kafka/kafkajs/consumer.js';
import { KafkajsProducer } from '../../src/adapters/kafka/kafkajs/producer.js';
import { resolveKafkaOptions } from '../../src/adapters/kafka/options.js';
import { EventHub } from '../../src/core/events.js';
import { type Logger, silentLogger } from '../../src/core/logger.js';
import { isMqError, type MqError } from '../../src/index.js';
import { waitFor } from '../../src/testing/wait-for.js';

/**
 * The kafkajs client's close and wait logic, driven through fakes of the kafkajs objects it
 * uses: its admin, the per-broker cluster it makes (found by kafkajs's private symbol), its
 * producer and its consumer.
 */

const TOPIC = 'orders';

function clientConfig(overrides: Partial<KafkaClientConfig> = {}): KafkaClientConfig {
  return {
    brokers: ['127.0.0.1:9092'],
    clientId: 'test',
    ssl: false,
    sasl: undefined,
    connectionTimeoutMs: 50,
    authenticationTimeoutMs: 50,
    requestTimeoutMs: 60_000,
    metadataMaxAgeMs: 300_000,
    logLevel: 'nothing',
    ...overrides,
  };
}

/** A promise with its resolve function, to hold a fake call until the test lets it go. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const connectionError = (): Error =>
  Object.assign(new Error('Connection error: connect ECONNREFUSED'), { name: 'KafkaJSConnectionError' });

/** What a promise settled with, for assertions. */
async function outcome(promise: Promise<unknown>): Promise<{ ok: true } | { ok: false; error: MqError }> {
  try {
    await promise;
    return { ok: true };
  } catch (error) {
    expect(isMqError(error), String(error)).toBe(true);
    return { ok: false, error: error as MqError };
  }
}

/**
 * A fake kafkajs instance for the admin: `partitions` says what each broker (node id) shows of
 * the topic; a node in `unreachable` refuses connections.
 */
function fakeKafka(options: { adminConnect?: Promise<void> } = {}) {
  const state = {
    nodes: ['1', '2', '3'],
    partitions: new Map<string, number>([
      ['1', 1],
      ['2', 1],
      ['3', 1],
    ]),
    unreachable: new Set<string>(),
    refreshes: 0,
    adminConnects: 0,
    adminDisconnects: 0,
    clusterDisconnects: 0,
  };
  const cluster = {
    connect: async () => {},
    disconnect: async () => {
      state.clusterDisconnects++;
    },
    refreshMetadata: async () => {
      state.refreshes++;
    },
    getNodeIds: () => state.nodes,
    findBroker: async ({ nodeId }: { nodeId: string }) => {
      if (state.unreachable.has(nodeId)) throw connectionError();
      return {
        metadata: async (topics: string[]) => ({
          topicMetadata: topics.map((topic) => ({
            topic,
            partitionMetadata: Array.from(
              { length: state.partitions.get(nodeId) ?? 0 },
              (_, partitionId) => ({
                partitionId,
                leader: 1,
              }),
            ),
          })),
        }),
      };
    },
  };
  const admin = {
    connect: () => {
      state.adminConnects++;
      return options.adminConnect ?? Promise.resolve();
    },
    disconnect: async () => {
      state.adminDisconnects++;
    },
    fetchTopicMetadata: async () => ({
      topics: [{ name: TOPIC, partitions: [{ partitionId: 0, leader: 1 }] }],
    }),
  };
  const kafka = {
    admin: () => admin,
    [Symbol('private:Kafka:createCluster')]: () => cluster,
  } as unknown as Kafka;
  return { kafka, state };
}

function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const record = (level: string) => (_fields: Record<string, unknown>, message: string) => {
    lines.push(`${level} ${message}`);
  };
  return {
    lines,
    logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
  };
}

describe('kafka waitForTopic with a broker that cannot be reached', () => {
  it('skips it, logged at debug, and settles after one round over the brokers that answer', async () => {
    const { kafka, state } = fakeKafka();
    state.unreachable.add('3');
    const { logger, lines } = recordingLogger();
    const admin = new KafkajsAdmin(kafka, clientConfig({ requestTimeoutMs: 2_000 }), logger);
    try {
      // It used to count the refused broker as "not served yet" and end in a TimeoutError.
      expect(await outcome(admin.waitForTopic(TOPIC, 1))).toEqual({ ok: true });
      expect(state.refreshes).toBe(1);
      expect(lines.filter((l) => l.startsWith('debug ') && l.includes('broker 3'))).toHaveLength(1);
    } finally {
      await admin.close();
    }
  });

  it('still waits for the brokers that answer and do not serve the topic yet', async () => {
    const { kafka, state } = fakeKafka();
    state.unreachable.add('3');
    state.partitions.set('2', 0);
    const admin = new KafkajsAdmin(kafka, clientConfig({ requestTimeoutMs: 5_000 }), silentLogger);
    try {
      const waiting = admin.waitForTopic(TOPIC, 1);
      await waitFor(() => state.refreshes >= 2);
      state.partitions.set('2', 1);
      expect(await outcome(waiting)).toEqual({ ok: true });
    } finally {
      await admin.close();
    }
  });

  it('needs at least one broker to answer: none is a TimeoutError', async () => {
    const { kafka, state } = fakeKafka();
    for (const node of state.nodes) state.unreachable.add(node);
    const admin = new KafkajsAdmin(kafka, clientConfig({ requestTimeoutMs: 200 }), silentLogger);
    try {
      const result = await outcome(admin.waitForTopic(TOPIC, 1));
      expect(result).toMatchObject({ ok: false, error: { code: 'TIMEOUT', retriable: true } });
    } finally {
      await admin.close();
    }
  });
});

describe('kafka admin close', () => {
  it('ends a waitForTopic in progress with ClosedError, waits for it and refuses later calls', async () => {
    const { kafka, state } = fakeKafka();
    state.partitions.set('2', 0); // never served: the wait would go on for requestTimeoutMs (60 s)
    const admin = new KafkajsAdmin(kafka, clientConfig(), silentLogger);
    const waiting = outcome(admin.waitForTopic(TOPIC, 1));
    await waitFor(() => state.refreshes >= 1);
    await admin.close();
    // Settled by the time close resolved: no round over the brokers can follow.
    const settled = await Promise.race([waiting, Promise.resolve('pending')]);
    expect(settled).toMatchObject({ ok: false, error: { code: 'CLOSED' } });
    expect(state.adminDisconnects).toBe(1);
    expect(state.clusterDisconnects).toBe(1);
    expect(await outcome(admin.partitionCount(TOPIC))).toMatchObject({
      ok: false,
      error: { code: 'CLOSED' },
    });
    expect(await outcome(admin.waitForTopic(TOPIC, 1))).toMatchObject({
      ok: false,
      error: { code: 'CLOSED' },
    });
    expect(state.adminConnects).toBe(1);
  });

  it('refuses a call waiting for a connect that never ends, and disconnects within the bound', async () => {
    const connecting = deferred();
    const { kafka, state } = fakeKafka({ adminConnect: connecting.promise });
    const admin = new KafkajsAdmin(kafka, clientConfig(), silentLogger);
    const call = outcome(admin.partitionCount(TOPIC));
    await waitFor(() => state.adminConnects === 1);
    // It used to wait for the connect to settle, which against a silent broker takes minutes.
    await admin.close();
    expect(await call).toMatchObject({ ok: false, error: { code: 'CLOSED' } });
    expect(state.adminDisconnects).toBe(1);
    // Once the connect ends after all, what it opened is disconnected too.
    connecting.resolve();
    await waitFor(() => state.adminDisconnects === 2);
  });
});

describe('kafka producer client disconnect', () => {
  it('waits for a connect in progress at most connectionTimeoutMs + authenticationTimeoutMs', async () => {
    const connecting = deferred();
    let connects = 0;
    let disconnects = 0;
    const fake = {
      connect: () => {
        connects++;
        return connecting.promise;
      },
      disconnect: async () => {
        disconnects++;
      },
      sendBatch: async () => [],
    };
    const kafka = { producer: () => fake } as unknown as Kafka;
    const producer = new KafkajsProducer(kafka, clientConfig(), false, new Map());
    const sent = outcome(
      producer.send([{ topic: TOPIC, key: undefined, value: new Uint8Array(), headers: {} }], {
        acks: -1,
        compression: 'none',
        timeoutMs: 50,
      }),
    );
    expect(await sent).toMatchObject({ ok: false, error: { code: 'TIMEOUT' } });
    expect(connects).toBe(1);
    // It used to wait for the connect to settle: kafkajs's whole retry budget.
    await producer.disconnect();
    expect(disconnects).toBe(1);
    connecting.resolve();
    await waitFor(() => disconnects === 2);
  });
});

describe('kafka consumer client stop', () => {
  it('ends the wait for a first join after a transient crash at once', async () => {
    const handlers = new Map<string, (event: unknown) => void>();
    const events = { GROUP_JOIN: 'join', REBALANCING: 'rebalancing', CRASH: 'crash' };
    const fake = {
      events,
      on: (event: string, handler: (event: unknown) => void) => handlers.set(event, handler),
      connect: async () => {},
      subscribe: async () => {},
      run: async () => {
        // A broker that has not caught up with the topic yet: kafkajs restarts by itself.
        const error = Object.assign(new Error('This server does not host this topic-partition'), {
          name: 'KafkaJSProtocolError',
          type: 'UNKNOWN_TOPIC_OR_PARTITION',
        });
        handlers.get('crash')?.({ payload: { error, restart: true } });
      },
      disconnect: async () => {},
    };
    const kafka = { consumer: () => fake } as unknown as Kafka;
    const config: ConsumerConfig = {
      groupId: 'g',
      topics: [{ topic: TOPIC, fromBeginning: true }],
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 500,
      rebalanceTimeoutMs: 60_000,
      maxWaitTimeMs: 100,
      maxBytesPerPartition: 1 << 20,
      concurrentBatches: 1,
    };
    const crashed: MqError[] = [];
    const listener: ConsumerListener = {
      batch: () => undefined,
      assigned: () => {},
      rebalancing: () => {},
      crashed: (error) => crashed.push(error),
    };
    // requestTimeoutMs 60 s: the wait's timer used to outlive stop() by that much.
    const consumer = new KafkajsConsumer(kafka, config, clientConfig());
    let running = true;
    const run = consumer.run(listener).finally(() => {
      running = false;
    });
    await waitFor(() => handlers.size === 3);
    await new Promise((resolve) => setImmediate(resolve));
    expect(running).toBe(true);
    await consumer.stop();
    await run;
    expect(crashed).toEqual([]);
  });
});

describe('kafka producer timeoutMs covers the whole send', () => {
  it('bounds a delayed send whose delay-tier topics cannot be made ready', async () => {
    // An admin whose every call hangs: the delay tiers are never ready.
    const never = new Promise<never>(() => {});
    const admin = new Proxy({} as AdminClient, { get: () => () => never });
    const producerClient: ProducerClient = { send: async () => [], disconnect: async () => {} };
    const client: KafkaClient = {
      admin,
      connect: async () => {},
      producer: () => producerClient,
      consumer: () => {
        throw new Error('no consumer in this test');
      },
      partitionsAdded: () => {},
      closing: () => {},
      close: async () => {},
    };
    const broker = new KafkaBroker(
      client,
      resolveKafkaOptions(new URL('kafka://fake:9092'), { delay: { forward: false } }),
      silentLogger,
      new EventHub(),
    );
    const errors: MqError[] = [];
    const producer = broker.producer({ timeoutMs: 100, onError: (error) => errors.push(error) });
    const message = { topic: TOPIC, body: 1, delayMs: 1000 };
    // They used to wait for the tier topics with no bound (create, then each broker).
    expect(await outcome(producer.send(message))).toMatchObject({
      ok: false,
      error: { code: 'TIMEOUT', retriable: true },
    });
    expect(await outcome(producer.sendBatch([message, { topic: TOPIC, body: 2 }]))).toMatchObject({
      ok: false,
      error: { code: 'TIMEOUT', retriable: true },
    });
    producer.sendOneWay(message);
    await waitFor(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: 'TIMEOUT', retriable: true });
    await broker.close();
  });
});

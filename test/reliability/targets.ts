import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type { ConnectOptions, Logger } from '../../src/index.js';
import { type KafkaServer, startKafka } from '../infra/kafka.js';
import { freePorts } from '../infra/net-utils.js';
import { type PrivateRabbitNode, startPrivateRabbitNode } from '../infra/rabbitmq-node.js';
import { FaultProxy } from './fault-proxy.js';

/** The brokers of the matrix: memory (in process), a private RabbitMQ node, 1- and 3-node Kafka. */
export type BrokerName = 'memory' | 'rabbitmq' | 'kafka' | 'kafka3';
export const BROKERS: readonly BrokerName[] = ['memory', 'rabbitmq', 'kafka', 'kafka3'];

/**
 * A broker under test, with its controls. Clients that publish connect with `publishUrl`,
 * clients that consume with `consumeUrl`: each goes through its own fault proxies, so a fault
 * can be put on one path only.
 */
export interface Target {
  name: BrokerName;
  publishUrl: string;
  consumeUrl: string;
  /** `connect` options for this broker (short timeouts, so faults show within a run). */
  connectOptions: ConnectOptions;
  /** Fault proxies per path (one per node); empty for memory. */
  proxies: { publish: FaultProxy[]; consume: FaultProxy[] };
  /** Nodes that can be killed, stopped and started; 0 for memory. */
  nodes: number;
  /** SIGKILL node `index`. */
  kill(index: number): Promise<void>;
  /** Clean shutdown of node `index` (only where `cleanStop`; else a kill). */
  stop(index: number): Promise<void>;
  /** Whether `stop` is a clean shutdown. */
  cleanStop: boolean;
  /** Starts node `index` again and waits until it serves. */
  start(index: number): Promise<void>;
  /** Starts every node that was killed or stopped and not started again (a run left it down). */
  heal(): Promise<void>;
  /** Kafka: the node index leading `topic`'s `partition`. */
  leaderOf?(topic: string, partition: number): Promise<number>;
  /**
   * Kafka: every record of `topic` as stored (message id from the `mq-id` header → partition
   * and offset), read with plain kafkajs on the brokers' own listener, for telling a message
   * that was never stored from one the consumer skipped.
   */
  audit?(topic: string): Promise<Map<string, string>>;
  close(): Promise<void>;
}

/** A logger that keeps the last lines only (for a failure's report), never writing anywhere. */
export function quietLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
      if (lines.length > 200) lines.shift();
    };
  return { lines, debug: () => {}, info: () => {}, warn: at('warn'), error: at('error') };
}

/** Starts (or, for memory, names) a target. Kafka and RabbitMQ are private: killing them harms no one. */
/** Tracks nodes left down, so that the next run can start them first. */
function tracked(target: Omit<Target, 'heal'>): Target {
  const down = new Set<number>();
  return {
    ...target,
    kill: async (i) => {
      down.add(i);
      await target.kill(i);
    },
    stop: async (i) => {
      down.add(i);
      await target.stop(i);
    },
    start: async (i) => {
      await target.start(i);
      down.delete(i);
    },
    heal: async () => {
      for (const i of [...down]) {
        await target.start(i);
        down.delete(i);
      }
    },
  };
}

export async function startTarget(name: BrokerName, log: (line: string) => void = () => {}): Promise<Target> {
  if (name === 'memory') {
    const url = `memory://rel-${randomUUID().slice(0, 8)}`;
    return {
      name,
      publishUrl: url,
      consumeUrl: url,
      connectOptions: { logger: quietLogger() },
      proxies: { publish: [], consume: [] },
      nodes: 0,
      cleanStop: false,
      kill: async () => {},
      stop: async () => {},
      start: async () => {},
      heal: async () => {},
      close: async () => {},
    };
  }
  if (name === 'rabbitmq') return tracked(await rabbitTarget(log));
  return tracked(await kafkaTarget(name, log));
}

async function proxiesFor(upstreamPorts: number[]): Promise<FaultProxy[]> {
  const proxies = upstreamPorts.map((port) => new FaultProxy(port));
  for (const proxy of proxies) await proxy.start();
  return proxies;
}

async function rabbitTarget(log: (line: string) => void): Promise<Omit<Target, 'heal'>> {
  log('rabbitmq: starting a private node');
  const node: PrivateRabbitNode = await startPrivateRabbitNode();
  const port = Number(new URL(node.url).port);
  const publish = await proxiesFor([port]);
  const consume = await proxiesFor([port]);
  const url = (p: FaultProxy) => `amqp://guest:guest@127.0.0.1:${p.port}`;
  return {
    name: 'rabbitmq',
    publishUrl: url(publish[0] as FaultProxy),
    consumeUrl: url(consume[0] as FaultProxy),
    connectOptions: {
      logger: quietLogger(),
      rabbitmq: {
        reconnect: { initialMs: 100, maxMs: 1000 },
        connectTimeoutMs: 3000,
        memberHeartbeatMs: 250,
      },
    },
    proxies: { publish, consume },
    nodes: 1,
    cleanStop: true,
    kill: () => node.kill(),
    stop: () => node.shutdown(),
    start: () => node.start(),
    close: async () => {
      for (const p of [...publish, ...consume]) await p.stop();
      await node.stop();
    },
  };
}

async function kafkaTarget(
  name: 'kafka' | 'kafka3',
  log: (line: string) => void,
): Promise<Omit<Target, 'heal'>> {
  const brokers = name === 'kafka3' ? 3 : 1;
  // Two client listeners per node (publish, consume), each behind its own proxy.
  const listenerPorts = await freePorts(brokers * 2);
  const publish = await proxiesFor(listenerPorts.filter((_, i) => i % 2 === 0));
  const consume = await proxiesFor(listenerPorts.filter((_, i) => i % 2 === 1));
  const external = Array.from({ length: brokers }, (_, i) => [
    { port: listenerPorts[2 * i] as number, advertisedPort: (publish[i] as FaultProxy).port },
    { port: listenerPorts[2 * i + 1] as number, advertisedPort: (consume[i] as FaultProxy).port },
  ]);
  log(`${name}: starting ${brokers} node(s)`);
  let server: KafkaServer;
  try {
    server = await startKafka({ brokers, external });
  } catch (error) {
    for (const p of [...publish, ...consume]) await p.stop();
    throw error;
  }
  const bootstrap = (ps: FaultProxy[]) => ps.map((p) => `127.0.0.1:${p.port}`).join(',');
  const admin = new Kafka({
    clientId: 'mqkit-reliability-admin',
    brokers: server.bootstrap.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  return {
    name,
    publishUrl: `kafka://${bootstrap(publish)}`,
    consumeUrl: `kafka://${bootstrap(consume)}`,
    connectOptions: {
      logger: quietLogger(),
      kafka: {
        logLevel: 'nothing',
        connectionTimeoutMs: 2000,
        requestTimeoutMs: 8000,
        metadataMaxAgeMs: 5000,
        consumer: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, rebalanceTimeoutMs: 20_000 },
      },
    },
    proxies: { publish, consume },
    nodes: brokers,
    cleanStop: true,
    kill: (i) => server.killNode(i),
    stop: (i) => server.stopNode(i),
    start: (i) => server.restartNode(i),
    leaderOf: async (topic, partition) => {
      await admin.connect();
      const meta = await admin.fetchTopicMetadata({ topics: [topic] });
      const leader = meta.topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader;
      if (leader === undefined || leader < 1) throw new Error(`no leader for ${topic}/${partition}`);
      return leader - 1; // node ids are 1-based, indexes 0-based
    },
    audit: async (topic) => {
      await admin.connect();
      const found = new Map<string, string>();
      const offsets = await admin.fetchTopicOffsets(topic);
      const kafka = new Kafka({
        clientId: 'mqkit-reliability-audit',
        brokers: server.bootstrap.split(','),
        logLevel: logLevel.NOTHING,
      });
      const consumer = kafka.consumer({ groupId: `audit-${randomUUID()}` });
      await consumer.connect();
      const remaining = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
      for (const [p, high] of remaining) if (high === 0n) remaining.delete(p);
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        const done = new Promise<void>((resolve) => {
          if (remaining.size === 0) resolve();
          void consumer.run({
            eachMessage: async ({ partition, message }) => {
              const id = message.headers?.['mq-id']?.toString() ?? `?${partition}-${message.offset}`;
              found.set(id, `${partition}@${message.offset}`);
              const high = remaining.get(partition);
              if (high !== undefined && BigInt(message.offset) + 1n >= high) {
                remaining.delete(partition);
                if (remaining.size === 0) resolve();
              }
            },
          });
        });
        await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      } finally {
        await consumer.disconnect().catch(() => {});
      }
      return found;
    },
    close: async () => {
      await admin.disconnect().catch(() => {});
      for (const p of [...publish, ...consume]) await p.stop();
      await server.stop();
    },
  };
}

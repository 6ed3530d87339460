/**
 * The peer `@moleculer/channels` (on moleculer), measured by `mqkit bench` with the same
 * workload and the same verification as mqkit:
 *
 *   npm --prefix bench/peers install     # once: the peers' own package.json, not mqkit's
 *   npx tsx src/cli/main.ts bench --url kafka://... --url amqp://... --peer bench/peers/moleculer-channels.ts
 *
 * One ServiceBroker with the Channels middleware on the URL's adapter; one service with a
 * channel of the workload's group, `maxInFlight` = the workload's concurrency (Kafka: from the
 * beginning of a topic of `partitions` created first). Each message is one `sendToChannel`
 * (the library has no batch send), awaited per batch; the body travels base64 in the JSON
 * payload the library serializes (its payloads are objects). Kafka publishes with the
 * workload's acks; RabbitMQ publishes persistent messages as the library does, without
 * publisher confirms, and throws "Write buffer is full" when amqplib's buffer is full: such
 * sends are counted as failed, as the library reports them.
 *
 * Clients: Kafka through the repository's kafkajs (as mqkit); RabbitMQ through amqplib 0.10
 * installed here, since the library reads `amqplib/package.json`, which amqplib 2 (mqkit's)
 * does not export.
 */
import { createRequire } from 'node:module';
// mqkit/bench, the entry a peer is written against (from this checkout's source).
import {
  type BenchOptions,
  type BenchPeer,
  type BenchResult,
  type ProgressListener,
  runWorkload,
} from '../../src/bench.js';

// Resolved from this folder, so bench/peers/node_modules holds the library and mqkit does not.
const require = createRequire(import.meta.url);

interface ServiceBroker {
  createService(schema: object): unknown;
  start(): Promise<void>;
  stop(): Promise<void>;
  sendToChannel(name: string, payload: unknown, opts?: object): Promise<void>;
}

async function run(url: string, options: BenchOptions, onProgress?: ProgressListener): Promise<BenchResult> {
  const { ServiceBroker } = require('moleculer') as { ServiceBroker: new (o: object) => ServiceBroker };
  const { Middleware } = require('@moleculer/channels') as { Middleware: (o: object) => object };
  const kafka = url.startsWith('kafka://');
  const topic = `bench-peer-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  if (kafka) {
    const { default: kafkajs } = await import('kafkajs');
    // kafka://[user:pass@]host:port[,host:port...]
    const hosts = (url.slice('kafka://'.length).split(/[/?#]/)[0] ?? '')
      .split('@')
      .pop()!
      .split(',')
      .map((host) => (host.includes(':') ? host : `${host}:9092`));
    const client = new kafkajs.Kafka({ brokers: hosts, logLevel: kafkajs.logLevel.NOTHING });
    const admin = client.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic, numPartitions: options.partitions }],
      waitForLeaders: true,
    });
    await admin.disconnect();
  }
  const broker = new ServiceBroker({
    nodeID: `bench-${topic}`,
    logger: false,
    // The library would otherwise stop the broker and exit the process on 'exit' and signals.
    skipProcessEventRegistration: true,
    middlewares: [Middleware({ adapter: kafka ? url.replace(/^kafka:\/\/[^@]*@/, 'kafka://') : url })],
  });
  const acks = options.acks === 'all' ? -1 : options.acks === 'leader' ? 1 : 0;
  return runWorkload(
    options,
    {
      consume: async (received) => {
        broker.createService({
          name: 'bench-consumer',
          channels: {
            [topic]: {
              group: `bench-${topic}`,
              maxInFlight: options.concurrency,
              ...(kafka ? { kafka: { fromBeginning: true } } : {}),
              handler: async (payload: { b: string }) => {
                received(Buffer.from(payload.b, 'base64'));
              },
            },
          },
        });
        await broker.start();
      },
      send: async (batch) => {
        await Promise.all(
          batch.map(({ body, key }) =>
            broker.sendToChannel(
              topic,
              { b: body.toString('base64') },
              kafka ? { key, acks } : { persistent: true },
            ),
          ),
        );
      },
      close: async () => {
        await broker.stop();
      },
    },
    {
      library: '@moleculer/channels',
      broker: kafka ? 'kafka' : 'rabbitmq',
      ...(onProgress ? { onProgress } : {}),
    },
  );
}

export const benchPeer: BenchPeer = { name: '@moleculer/channels', brokers: ['kafka', 'rabbitmq'], run };

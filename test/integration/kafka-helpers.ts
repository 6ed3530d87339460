import { type AddressInfo, createServer, type Socket } from 'node:net';
import kafkajs, { type Consumer, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll } from 'vitest';
import { type Broker, connect } from '../../src/index.js';
import { waitFor } from '../../src/testing/wait-for.js';

/** One mqkit connection for the enclosing describe block, opened before and closed after its tests. */
export function brokerForSuite(url: string): () => Broker {
  let broker: Broker | undefined;
  beforeAll(async () => {
    broker = await connect(url);
  });
  afterAll(async () => {
    await broker?.close();
  });
  return () => {
    if (broker === undefined) throw new Error('brokerForSuite: used outside a test');
    return broker;
  };
}

/** A plain kafkajs client on the cluster behind a `kafka://h1:p1,h2:p2` URL, as another application would use. */
export function plainKafka(url: string): InstanceType<typeof kafkajs.Kafka> {
  const brokers =
    url
      .replace(/^kafka:\/\//, '')
      .split(/[/?]/)[0]
      ?.split(',') ?? [];
  return new kafkajs.Kafka({ clientId: 'plain-test', brokers, logLevel: kafkajs.logLevel.NOTHING });
}

/**
 * Creates `topic` (one partition) with a `max.message.bytes` of `maxBytes`, so the broker
 * refuses larger records. Without kafkajs's own wait for leaders: it fails on a broker that
 * has not caught up yet (UNKNOWN_TOPIC_OR_PARTITION); mqkit's calls wait until every broker
 * serves the topic.
 */
export async function createSmallTopic(url: string, topic: string, maxBytes: number): Promise<void> {
  const admin = plainKafka(url).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: false,
      topics: [
        { topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(maxBytes) }] },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

/** A record as a plain consumer sees it, with header values read as UTF-8. */
export interface PlainRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

function plainRecord(topic: string, partition: number, message: KafkaMessage): PlainRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key?.toString() ?? null,
    value: message.value,
    headers,
  };
}

/**
 * Reads `topics` from the beginning with a plain kafkajs consumer in a new group until `done`
 * says the records seen so far suffice, then disconnects and returns them.
 */
export async function readPlain(
  url: string,
  topics: string[],
  done: (records: PlainRecord[]) => boolean,
  timeoutMs = 30_000,
): Promise<PlainRecord[]> {
  const consumer: Consumer = plainKafka(url).consumer({
    groupId: `plain-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    maxWaitTimeInMs: 100,
    heartbeatInterval: 500,
  });
  const records: PlainRecord[] = [];
  await consumer.connect();
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        records.push(plainRecord(topic, partition, message));
      },
    });
    await waitFor(() => done(records), {
      timeoutMs,
      message: () => `plain consumer of ${topics.join(', ')} has ${records.length} records`,
    });
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** A TCP server on 127.0.0.1 standing in for a Kafka broker; `close` also cuts its connections. */
export interface FakeKafka {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

/**
 * A fake Kafka broker. 'silent': accepts connections and never writes a byte (a firewall that
 * swallows packets, a wrong port on a busy service). 'refuse-credentials': speaks just enough
 * of the Kafka protocol (ApiVersions, SaslHandshake offering PLAIN, SaslAuthenticate) to refuse
 * any credentials with SASL_AUTHENTICATION_FAILED, as a broker does for a wrong password.
 */
export async function fakeKafka(mode: 'silent' | 'refuse-credentials'): Promise<FakeKafka> {
  const sockets = new Set<Socket>();
  const fake: FakeKafka = { port: 0, accepted: 0, close: async () => {} };
  const server = createServer((socket) => {
    fake.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (mode === 'silent') return;
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
        const size = buffered.readInt32BE(0);
        const request = buffered.subarray(4, 4 + size);
        buffered = buffered.subarray(4 + size);
        const body = answer(request.readInt16BE(0), request.readInt16BE(2));
        if (body === undefined) {
          socket.destroy();
          return;
        }
        const header = Buffer.alloc(8);
        header.writeInt32BE(4 + body.length, 0);
        header.writeInt32BE(request.readInt32BE(4), 4); // correlation id
        socket.write(Buffer.concat([header, body]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = (server.address() as AddressInfo).port;
  fake.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return fake;
}

const int16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const kafkaString = (text: string): Buffer =>
  Buffer.concat([int16(Buffer.byteLength(text)), Buffer.from(text)]);

/** The fake broker's response body to a request, or undefined to hang up. */
function answer(apiKey: number, version: number): Buffer | undefined {
  switch (apiKey) {
    case 18: {
      // ApiVersions: itself 0-2, SaslHandshake (17) 0-1, SaslAuthenticate (36) 0-1.
      const apis = [
        [18, 0, 2],
        [17, 0, 1],
        [36, 0, 1],
      ];
      const entries = apis.flatMap(([key, min, max]) => [
        int16(key as number),
        int16(min as number),
        int16(max as number),
      ]);
      return Buffer.concat([int16(0), int32(apis.length), ...entries, ...(version >= 1 ? [int32(0)] : [])]);
    }
    case 17: // SaslHandshake: no error, mechanisms [PLAIN]
      return Buffer.concat([int16(0), int32(1), kafkaString('PLAIN')]);
    case 36: // SaslAuthenticate: SASL_AUTHENTICATION_FAILED, a message, no bytes, (v1) no session lifetime
      return Buffer.concat([
        int16(58),
        kafkaString('Authentication failed: Invalid username or password'),
        int32(0),
        ...(version >= 1 ? [Buffer.alloc(8)] : []),
      ]);
    default:
      return undefined;
  }
}

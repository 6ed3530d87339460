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

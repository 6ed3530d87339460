import fc from 'fast-check';
import kafkajs, { type Consumer, type Producer } from 'kafkajs';
import { inject } from 'vitest';
import { plainKafka } from '../integration/kafka-helpers.js';
import { contentTypes, foreignBodies, mqHeaderNames, mqHeaderValues } from './foreign-arbitraries.js';
import { type DeadRecord, type ForeignClient, foreignFuzzSuite, SEQ, THROW } from './foreign-suite.js';

// Records written with a plain kafkajs producer: random keys and values (bytes, JSON cut short,
// tombstones), random header names and byte values, mqkit's own headers set to garbage.
interface KafkaRecord {
  key: string | Buffer | null;
  value: Buffer | null;
  headers: Record<string, string | Buffer>;
  partition: number;
  timestamp?: string;
}

const headerValue = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b)),
);

const kafkaRecord: fc.Arbitrary<KafkaRecord> = fc.record(
  {
    key: fc.oneof(
      fc.constant(null),
      fc.string({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
    ),
    value: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 8, arbitrary: foreignBodies }),
    headers: fc
      .tuple(
        fc.dictionary(fc.string({ maxLength: 20 }), headerValue, { maxKeys: 4 }),
        fc.dictionary(mqHeaderNames, fc.oneof(mqHeaderValues, contentTypes), { maxKeys: 3 }),
      )
      .map(([a, b]) => ({ ...a, ...b })),
    partition: fc.integer({ min: 0, max: 1 }),
    timestamp: fc.constantFrom('0', '1', String(Date.now()), '99999999999999'),
  },
  { requiredKeys: ['key', 'value', 'headers', 'partition'] },
);

class KafkaClient implements ForeignClient<KafkaRecord> {
  private producer: Producer | undefined;
  private consumer: Consumer | undefined;
  private readonly kafka = plainKafka(inject('kafkaUrl'));

  async publish(topic: string, records: readonly KafkaRecord[]): Promise<string[]> {
    if (this.producer === undefined) {
      this.producer = this.kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
      await this.producer.connect();
    }
    await this.producer.send({ topic, acks: -1, messages: records.map((r) => ({ ...r })) });
    return records.map((r) => String(r.headers[SEQ]));
  }

  async readDeadLetters(dlq: string, onRecord: (record: DeadRecord) => void): Promise<void> {
    this.consumer = this.kafka.consumer({ groupId: `${dlq}-plain-reader` });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: dlq, fromBeginning: true });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        const record: DeadRecord = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) record[k] = String(v);
        onRecord(record);
      },
    });
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect();
    await this.producer?.disconnect();
  }
}

foreignFuzzSuite<KafkaRecord>({
  kind: 'kafka',
  url: () => inject('kafkaUrl'),
  client: async () => new KafkaClient(),
  batch: fc.array(fc.record({ message: kafkaRecord, throws: fc.boolean() }), { minLength: 1, maxLength: 6 }),
  tag: (r, seq, throws) => ({ ...r, headers: { ...r.headers, [SEQ]: seq, [THROW]: throws ? '1' : '0' } }),
  canary: { key: null, value: Buffer.from('{"ok":true}'), headers: {}, partition: 0 },
  partitions: 2,
  // A batch whose messages throw takes about a minute on Kafka (retry copies ride the delay
  // tiers), so the full run plans 3 batches and the quick one 1.
  weight: 0.0015,
  settleMs: 30_000,
});

import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import fc from 'fast-check';
import { inject } from 'vitest';
import { rawConnection } from '../integration/rabbitmq-helpers.js';
import { contentTypes, foreignBodies, mqHeaderNames, mqHeaderValues } from './foreign-arbitraries.js';
import { type DeadRecord, type ForeignClient, foreignFuzzSuite, SEQ, THROW } from './foreign-suite.js';

// Messages published with plain amqplib (channel.publish), with random properties and header
// tables of every AMQP field type, to the topic's exchange under random routing keys.
interface AmqpMessage {
  routingKey: string;
  content: Buffer;
  properties: Options.Publish;
}

const shortString = fc.string({ maxLength: 40 }); // at most 160 bytes: within AMQP's 255-byte short strings
const tableValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
);

const amqpMessage: fc.Arbitrary<AmqpMessage> = fc.record({
  routingKey: fc.oneof(fc.constant(''), fc.stringMatching(/^[a-z.#*]{0,20}$/), shortString),
  content: foreignBodies,
  properties: fc
    .record(
      {
        contentType: contentTypes,
        contentEncoding: fc.constantFrom('gzip', 'utf-8', '', 'deflate', 'binary'),
        messageId: fc.oneof(shortString, fc.constant(''), fc.constant('m'.repeat(255))),
        correlationId: shortString,
        type: shortString,
        appId: shortString,
        timestamp: fc.oneof(fc.nat(), fc.constant(0), fc.constant(2 ** 40)),
        priority: fc.integer({ min: 0, max: 9 }),
        deliveryMode: fc.constantFrom(1, 2),
        headers: fc
          .tuple(
            fc.dictionary(fc.string({ maxLength: 20 }), tableValue, { maxKeys: 4 }),
            fc.dictionary(mqHeaderNames, fc.oneof(mqHeaderValues, tableValue), { maxKeys: 3 }),
          )
          .map(([a, b]) => ({ ...a, ...b })),
      },
      { requiredKeys: [] },
    )
    .map((p) => p as Options.Publish),
});

class AmqpClient implements ForeignClient<AmqpMessage> {
  private publisher: ConfirmChannel | undefined;
  constructor(private readonly connection: ChannelModel) {}

  async publish(topic: string, messages: readonly AmqpMessage[]): Promise<string[]> {
    this.publisher ??= await this.connection.createConfirmChannel();
    const channel = this.publisher;
    const sent: string[] = [];
    for (const m of messages) {
      const seq = String(m.properties.headers?.[SEQ]);
      try {
        channel.publish(topic, m.routingKey, m.content, m.properties);
        sent.push(seq);
      } catch {
        // amqplib refused to encode it (the generator's fault, not mqkit's): not sent, not expected.
      }
    }
    await channel.waitForConfirms();
    return sent;
  }

  async readDeadLetters(dlq: string, onRecord: (record: DeadRecord) => void): Promise<void> {
    const channel = await this.connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, dlq, '#');
    await channel.consume(
      queue,
      (m) => {
        if (m === null) return;
        const record: DeadRecord = {};
        for (const [k, v] of Object.entries(m.properties.headers ?? {})) record[k] = String(v);
        onRecord(record);
      },
      { noAck: true },
    );
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

foreignFuzzSuite<AmqpMessage>({
  kind: 'rabbitmq',
  url: () => inject('amqpUrl'),
  client: async () => new AmqpClient(await rawConnection(inject('amqpUrl'))),
  batch: fc.array(fc.record({ message: amqpMessage, throws: fc.boolean() }), { minLength: 1, maxLength: 6 }),
  tag: (m, seq, throws) => ({
    ...m,
    properties: {
      ...m.properties,
      headers: { ...m.properties.headers, [SEQ]: seq, [THROW]: throws ? '1' : '0' },
    },
  }),
  canary: { routingKey: '', content: Buffer.from('{"ok":true}'), properties: {} },
  partitions: 1,
  weight: 0.02,
  settleMs: 20_000,
});

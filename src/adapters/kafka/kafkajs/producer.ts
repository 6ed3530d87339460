/** The kafkajs producer behind `ProducerClient`. */
import type { Kafka, Message, Producer, RecordMetadata } from 'kafkajs';
import { PublishError, TimeoutError } from '../../../core/errors.js';
import { withinTime } from '../../../core/timers.js';
import type {
  Compression,
  KafkaAcks,
  KafkaClientConfig,
  OutgoingRecord,
  ProducerClient,
  RecordPosition,
} from '../client.js';
import { COMPRESSION } from './config.js';
import { connectWaitMs, disconnectAfter } from './connection.js';
import { producerStateLost, toMqError } from './errors.js';
import { type PartitionMinimums, PLACED, type PlacedMessage, placingPartitioner } from './partitioner.js';

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** @internal Exported for tests only. */
export class KafkajsProducer implements ProducerClient {
  private producer: Producer;
  /** Connecting or connected; cleared on failure so the next send tries again. */
  private connected: Promise<void> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: KafkaClientConfig,
    private readonly idempotent: boolean,
    private readonly minimums: PartitionMinimums,
  ) {
    // Connected on the first send: a producer never used opens no socket.
    this.producer = this.create();
  }

  private create(): Producer {
    return this.kafka.producer({
      idempotent: this.idempotent,
      // The idempotent producer keeps one request in flight per broker (KIP-98); kafkajs also
      // serialises its produce requests per broker, so concurrent sends are coalesced upstream.
      maxInFlightRequests: this.idempotent ? 1 : undefined,
      createPartitioner: () => placingPartitioner(this.minimums),
      metadataMaxAge: this.config.metadataMaxAgeMs,
      allowAutoTopicCreation: true,
    });
  }

  /** Swaps in a new kafkajs producer (a new producer id) after `failed` lost its sequence state. */
  private replace(failed: Producer): void {
    if (this.producer !== failed) return; // another send replaced it already
    this.producer = this.create();
    this.connected = undefined;
    void failed.disconnect().catch(() => {});
  }

  /** Connects once; a failed attempt (cluster unreachable at the time) is retried by the next send. */
  private connect(): Promise<void> {
    if (this.connected === undefined) {
      const attempt = this.producer.connect();
      this.connected = attempt;
      attempt.catch(() => {
        if (this.connected === attempt) this.connected = undefined;
      });
    }
    return this.connected;
  }

  async send(
    records: readonly OutgoingRecord[],
    options: { acks: KafkaAcks; compression: Compression; timeoutMs: number },
  ): Promise<RecordPosition[]> {
    const messages: Message[] = new Array(records.length);
    const byTopic = new Map<string, Message[]>();
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as OutgoingRecord;
      const message: Message = {
        key: record.key ?? null,
        value: toBuffer(record.value),
        headers: record.headers,
      };
      messages[i] = message;
      const list = byTopic.get(record.topic);
      if (list === undefined) byTopic.set(record.topic, [message]);
      else list.push(message);
    }
    const context = `send to ${[...byTopic.keys()].join(', ')}`;
    const producer = this.producer;
    const sending = this.connect().then(() =>
      producer.sendBatch({
        acks: options.acks,
        timeout: options.timeoutMs,
        compression: COMPRESSION[options.compression],
        topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
      }),
    );
    try {
      const stored = await withinTime(
        sending,
        options.timeoutMs,
        () =>
          new TimeoutError(
            `${context}: not acknowledged within ${options.timeoutMs} ms; the records may still be stored`,
          ),
      );
      const placed = positions(records, messages, stored);
      if (options.acks !== 0) {
        // kafkajs 2.2.4 keeps each broker's answer across its retries: a partition whose leader
        // moved to a broker that had answered already is sent nowhere, and sendBatch resolves
        // without it (tulios/kafkajs#1303). A record with no acknowledged offset was not stored.
        const missing = new Set<string>();
        for (const [i, p] of placed.entries())
          if (p.offset === undefined) missing.add(`${(records[i] as OutgoingRecord).topic}[${p.partition}]`);
        if (missing.size > 0) {
          throw new PublishError(
            `${context}: the broker's answer has no acknowledgement for ${[...missing].join(', ')} (its leader moved during the send); not stored, send again`,
            { retriable: true },
          );
        }
      }
      return placed;
    } catch (error) {
      if (producerStateLost(error)) {
        this.replace(producer);
        throw new PublishError(
          `${context}: ${(error as Error).message}; the producer was reset, send again`,
          {
            cause: error,
            retriable: true,
          },
        );
      }
      throw toMqError(error, context, true);
    }
  }

  /**
   * Disconnecting under a connect in progress ends its socket while kafkajs still writes to it
   * ("write after end") and retries on a new one that nothing closes: the connect is waited for
   * first, but at most `connectionTimeoutMs + authenticationTimeoutMs` (against a broker gone
   * silent kafkajs retries for minutes); past that, the producer is disconnected at once and
   * again once the connect settled.
   */
  async disconnect(): Promise<void> {
    const producer = this.producer;
    await disconnectAfter(this.connected ?? Promise.resolve(), connectWaitMs(this.config), () =>
      producer.disconnect(),
    );
  }
}

/** Offsets per message: the response gives one base offset per partition, messages follow in order. */
function positions(
  records: readonly OutgoingRecord[],
  messages: readonly Message[],
  metadata: readonly RecordMetadata[],
): RecordPosition[] {
  // Per topic, per partition: the offset the next message placed there got.
  const next = new Map<string, number[]>();
  for (const m of metadata) {
    if (m.baseOffset === undefined) continue;
    let byPartition = next.get(m.topicName);
    if (byPartition === undefined) {
      byPartition = [];
      next.set(m.topicName, byPartition);
    }
    byPartition[m.partition] = Number(m.baseOffset);
  }
  const out = new Array<RecordPosition>(records.length);
  for (let i = 0; i < records.length; i++) {
    const partition = (messages[i] as PlacedMessage)[PLACED] ?? 0;
    const byPartition = next.get((records[i] as OutgoingRecord).topic);
    const offset = byPartition?.[partition];
    if (byPartition !== undefined && offset !== undefined) byPartition[partition] = offset + 1;
    out[i] = { partition, offset };
  }
  return out;
}

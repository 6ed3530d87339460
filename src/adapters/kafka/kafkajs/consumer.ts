/** The kafkajs consumer behind `ConsumerClient`. */
import kafkajs, {
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type Kafka,
  type KafkaMessage,
} from 'kafkajs';
import type { Headers } from '../../../core/message.js';
import { H } from '../../../core/wire.js';
import type {
  ConsumerClient,
  ConsumerConfig,
  ConsumerListener,
  FetchedRecord,
  KafkaClientConfig,
  TopicPartition,
} from '../client.js';
import { subscriptionAssigner, tagsUserData } from './assigner.js';
import { connectWaitMs, disconnectAfter } from './connection.js';
import {
  isTransientMetadataError,
  type KafkajsErrorShape,
  TRANSIENT_METADATA_ERRORS,
  toMqError,
} from './errors.js';
import { Utf8Cache } from './utf8-cache.js';

// kafkajs is CommonJS; Node detects only some of its exports as named ESM exports.
const { PartitionAssigners } = kafkajs;

/**
 * Runs `action` until it stops failing with one of `TRANSIENT_METADATA_ERRORS`, for up to
 * `timeoutMs`: what one broker answers right after a topic was created or grown, until
 * the change reached its metadata cache.
 */
async function untilKnown<T>(timeoutMs: number, action: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
    try {
      return await action();
    } catch (error) {
      const unknown = TRANSIENT_METADATA_ERRORS.has((error as KafkajsErrorShape).type ?? '');
      if (!unknown || Date.now() + wait > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

const EMPTY = Buffer.alloc(0);
/** The few content types a topic's codecs write, on every record. */
const CONTENT_TYPES = new Utf8Cache(8, 64);

/**
 * The record's headers as strings, converted in place: kafkajs made the object for this record
 * alone and nothing else reads it (a copy was one more object per message).
 */
function readHeaders(headers: IHeaders | undefined): Headers {
  if (headers === undefined) return {};
  const out = headers as Record<string, unknown>;
  for (const name in headers) {
    let value = headers[name];
    if (Array.isArray(value)) value = value[value.length - 1];
    out[name] =
      value === undefined || value === null
        ? ''
        : name === H.contentType && Buffer.isBuffer(value)
          ? CONTENT_TYPES.read(value, 0, value.length)
          : value.toString();
  }
  return out as Headers;
}

/** The last timestamp string parsed, and its number: records of one batch mostly share one. */
let lastTimestampText = '';
let lastTimestamp = 0;

function timestampOf(text: string): number {
  if (text !== lastTimestampText) {
    lastTimestamp = Number(text);
    lastTimestampText = text;
  }
  return lastTimestamp;
}

function readRecord(message: KafkaMessage): FetchedRecord {
  return {
    offset: Number(message.offset),
    offsetText: message.offset,
    key: message.key === null || message.key === undefined ? undefined : message.key.toString(),
    value: message.value ?? EMPTY,
    headers: readHeaders(message.headers),
    timestamp: timestampOf(message.timestamp),
  };
}

/** @internal Exported for tests only. */
export class KafkajsConsumer implements ConsumerClient {
  private readonly consumer: Consumer;
  private readonly paused = new Map<string, TopicPartition>();
  private stopped: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  /** Ends `run`'s wait for a first join after a transient crash (called by `stop`). */
  private endJoinWait: (() => void) | undefined;
  private stopping = false;
  private readonly requestTimeoutMs: number;

  constructor(
    kafka: Kafka,
    private readonly config: ConsumerConfig,
    private readonly client: KafkaClientConfig,
  ) {
    this.requestTimeoutMs = client.requestTimeoutMs;
    const metadataMaxAgeMs = client.metadataMaxAgeMs;
    this.consumer = kafka.consumer({
      groupId: config.groupId,
      sessionTimeout: config.sessionTimeoutMs,
      heartbeatInterval: config.heartbeatIntervalMs,
      rebalanceTimeout: config.rebalanceTimeoutMs,
      maxWaitTimeInMs: config.maxWaitTimeMs,
      maxBytesPerPartition: config.maxBytesPerPartition,
      metadataMaxAge: metadataMaxAgeMs,
      allowAutoTopicCreation: false,
      // kafkajs's assigner second, for groups shared with plain kafkajs consumers.
      partitionAssigners: [
        subscriptionAssigner(tagsUserData(config.tags ?? {})),
        PartitionAssigners.roundRobin,
      ],
    });
  }

  async run(listener: ConsumerListener): Promise<void> {
    const c = this.consumer;
    let joined = false;
    let failed = false;
    /** A crash before the first join that kafkajs restarts from by itself. */
    let transient: unknown;
    let settle: (() => void) | undefined;
    c.on(c.events.GROUP_JOIN, (event) => {
      joined = true;
      const assignment = event.payload.memberAssignment;
      const partitions: TopicPartition[] = [];
      for (const topic in assignment) {
        for (const partition of assignment[topic] ?? []) partitions.push({ topic, partition });
      }
      // A restarted kafkajs consumer forgets its paused partitions; this seam promises they stay.
      const again = partitions.filter((tp) => this.paused.has(`${tp.partition}:${tp.topic}`));
      if (again.length > 0) this.apply('pause', again);
      listener.assigned(partitions);
      settle?.();
    });
    c.on(c.events.REBALANCING, () => listener.rebalancing());
    c.on(c.events.CRASH, (event) => {
      const { error, restart } = event.payload;
      // A broker that has not caught up with a new topic yet (UNKNOWN_TOPIC_OR_PARTITION in a
      // metadata or fetch answer): kafkajs rejoins after a pause, and the first join waits.
      if (!joined && restart && isTransientMetadataError(error)) {
        transient = error;
        return;
      }
      failed = true;
      listener.crashed(toMqError(error, `consumer ${this.config.groupId}`), restart);
      settle?.();
    });
    try {
      this.connecting = c.connect();
      await this.connecting;
      for (const { topic, fromBeginning } of this.config.topics) {
        await untilKnown(this.requestTimeoutMs, () => c.subscribe({ topic, fromBeginning }));
      }
    } catch (error) {
      throw toMqError(error, `consumer ${this.config.groupId}`);
    }
    await this.start(listener);
    if (joined || failed || transient === undefined || this.stopping) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.requestTimeoutMs);
      settle = () => {
        clearTimeout(timer);
        resolve();
      };
      this.endJoinWait = settle;
    });
    this.endJoinWait = undefined;
    if (!joined && !failed && !this.stopping)
      listener.crashed(toMqError(transient, `consumer ${this.config.groupId}`), true);
  }

  private async start(listener: ConsumerListener): Promise<void> {
    const c = this.consumer;
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.config.concurrentBatches,
      eachBatch: async ({ batch, resolveOffset }: EachBatchPayload) => {
        const records = new Array<FetchedRecord>(batch.messages.length);
        for (let i = 0; i < records.length; i++) records[i] = readRecord(batch.messages[i] as KafkaMessage);
        const taken = await listener.batch({ topic: batch.topic, partition: batch.partition, records });
        if (taken !== undefined) resolveOffset(String(taken));
      },
    });
  }

  pause(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) this.paused.set(`${tp.partition}:${tp.topic}`, tp);
    this.apply('pause', partitions);
  }

  resume(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) this.paused.delete(`${tp.partition}:${tp.topic}`);
    this.apply('resume', partitions);
  }

  private apply(action: 'pause' | 'resume', partitions: readonly TopicPartition[]): void {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of partitions) {
      const list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, [partition]);
      else list.push(partition);
    }
    try {
      this.consumer[action]([...byTopic].map(([topic, list]) => ({ topic, partitions: list })));
    } catch {
      // Not running (restarting after a crash): re-applied from `paused` when it rejoins.
    }
  }

  seek({ topic, partition, offset }: TopicPartition & { offset: number }): void {
    this.consumer.seek({ topic, partition, offset: String(offset) });
  }

  async commit(offsets: readonly (TopicPartition & { offset: number })[]): Promise<void> {
    try {
      await this.consumer.commitOffsets(
        offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: String(offset) })),
      );
    } catch (error) {
      throw toMqError(error, `commit of group ${this.config.groupId}`);
    }
  }

  stop(): Promise<void> {
    this.stopping = true;
    this.endJoinWait?.();
    // After a connect in progress settled, within a bound: see KafkajsProducer.disconnect.
    this.stopped ??= disconnectAfter(this.connecting ?? Promise.resolve(), connectWaitMs(this.client), () =>
      this.consumer.disconnect(),
    );
    return this.stopped;
  }
}

import type { Channel, ConsumeMessage } from 'amqplib';
import type { Claim, ConsumerEngine, ConsumerTransport, RetryCopy } from '../../core/consumer-engine.js';
import type { ReceivedRecord } from '../../core/dispatch.js';
import type { Headers } from '../../core/message.js';
import type { ResolvedSubscribeOptions } from '../../core/options.js';
import { H } from '../../core/wire.js';
import { numericHeader, publishOptions, routingKey, toRecord } from './amqp-wire.js';
import type { RabbitConnection } from './connection.js';
import { delayTiers, hopHeaders } from './delay-route.js';
import { holdGroupShape, releaseUnrouted } from './group-join.js';
import { names } from './names.js';
import { prefetchFor, type ResolvedRabbitMqOptions } from './options.js';
import { PartitionAssigner, type PartitionHost } from './partition-assigner.js';
import { toBuffer } from './producer.js';
import type { Publisher } from './publisher.js';
import { QueueConsumer } from './queue-consumer.js';
import type { GroupQueueOptions, Topology } from './topology.js';

/** What a subscription needs from its broker connection. */
export interface SubscriptionContext {
  /** Consumers, acks and declarations. */
  connection: RabbitConnection;
  /** Publishes only (see index.ts: a resource alarm blocks publishing connections). */
  publishing: RabbitConnection;
  topology: Topology;
  options: ResolvedRabbitMqOptions;
  /** Confirmed publishes of retried and dead-lettered copies. */
  publisher: Publisher;
}

type Kind = 'queue' | 'broadcast' | 'stream' | 'partitioned';

interface RabbitRecord extends ReceivedRecord {
  readonly consumer: QueueConsumer;
  readonly message: ConsumeMessage;
  /** Stream topics: the record's offset in the stream. */
  readonly streamOffset: number | undefined;
}

/**
 * A running subscription. Four shapes, by mode and order (see index.ts for the topology):
 * - `queue`: order 'concurrent' in clustering mode; members compete on the group's queue.
 * - `partitioned`: order 'key' | 'partition' in clustering mode; members share partition queues.
 * - `broadcast`: this subscription's own exclusive queue.
 * - `stream`: a stream topic, read from `startFrom` by this subscription alone.
 *
 * It is the consumer engine's transport: each queue consumer is one claim of the engine (its
 * lanes never span two queues). A message is acked only after its handler resolved (or after
 * its retry or dead-letter copy was confirmed). Retries of ordered subscriptions and stream
 * topics wait in this process, holding their key; retries of concurrent ones go through the
 * delay tiers back to this subscription's queue only, freeing the slot meanwhile.
 */
export class RabbitMqTransport implements ConsumerTransport<RabbitRecord>, PartitionHost {
  readonly topic: string;
  readonly group: string;
  private readonly kind: Kind;
  private engine!: ConsumerEngine<RabbitRecord>;
  /** The engine's claim of each live queue consumer. */
  private readonly claims = new Map<QueueConsumer, Claim>();
  private prefetch: number;
  private readonly partitions = new Map<number, QueueConsumer>();
  private single: QueueConsumer | undefined;
  private assigner: PartitionAssigner | undefined;
  private readonly closing = new AbortController();
  /** Stream offset to resume from after a reconnect (one past the last handled). */
  private streamNext: number | undefined;
  /** Consumes the group's shape queue while this member lives (see `holdShape`). */
  private shapeChannel: Channel | undefined;
  private resuming: Promise<void> | undefined;
  private readonly onReconnected = (): void => {
    this.resuming ??= this.resume().finally(() => {
      this.resuming = undefined;
    });
  };

  /** Retry copies through the delay tiers: order 'concurrent' on queues (not streams). */
  publishRetry?: (record: RabbitRecord, copy: RetryCopy) => Promise<void>;

  constructor(
    private readonly ctx: SubscriptionContext,
    private readonly options: ResolvedSubscribeOptions,
    private readonly onClosed: () => void,
  ) {
    this.topic = options.topic;
    this.group = options.group;
    this.kind = ctx.topology.isStream(options.topic)
      ? 'stream'
      : options.mode === 'broadcasting'
        ? 'broadcast'
        : options.order === 'concurrent'
          ? 'queue'
          : 'partitioned';
    this.prefetch = this.prefetchFor(options.concurrency);
    if (options.order === 'concurrent' && this.kind !== 'stream')
      this.publishRetry = (record, copy) => this.copyForRetry(record, copy);
  }

  /** A batch handler's batches can fill only if the broker hands out a batch per slot. */
  private prefetchFor(concurrency: number): number {
    return prefetchFor(this.ctx.options, concurrency * (this.options.batch?.maxSize ?? 1));
  }

  concurrencyChanged(concurrency: number): void {
    const prefetch = this.prefetchFor(concurrency);
    if (prefetch === this.prefetch) return;
    this.prefetch = prefetch;
    for (const consumer of this.claims.keys()) consumer.setPrefetch(prefetch);
  }

  /** A stream's queue is bound to every tag: tags are filtered here, not by the broker. */
  get tagFilter(): 'client' | 'broker' {
    return this.kind === 'stream' ? 'client' : 'broker';
  }

  /** Declares the topology and starts consuming; resolves once the broker confirmed the consumers. */
  async start(engine: ConsumerEngine<RabbitRecord>): Promise<void> {
    this.engine = engine;
    await this.setUp();
    this.ctx.connection.on('reconnected', this.onReconnected);
  }

  private queueOptions(): GroupQueueOptions {
    const dl = this.options.deadLetterTopic;
    return { deadLetterExchange: dl === undefined ? undefined : names.topicExchange(dl) };
  }

  private async setUp(): Promise<void> {
    const { topology } = this.ctx;
    const { topic, group, tags } = this.options;
    await topology.topic(topic);
    if (this.options.deadLetterTopic !== undefined)
      await topology.deadLetterTopic(this.options.deadLetterTopic);
    switch (this.kind) {
      case 'queue': {
        this.shapeChannel = await holdGroupShape(this.ctx.connection, this.options);
        const queue = names.groupQueue(topic, group);
        const created = await topology.queueMissing(queue);
        await topology.groupQueue(topic, group, tags, this.queueOptions());
        if (created) await releaseUnrouted(this.ctx, topic);
        await this.startSingle(queue);
        return;
      }
      case 'broadcast':
        await topology.broadcastQueue(topic, group, tags);
        await this.startSingle(names.groupQueue(topic, group));
        return;
      case 'stream':
        await this.startSingle(names.topicQueue(topic), { 'x-stream-offset': this.streamOffset() });
        return;
      case 'partitioned': {
        this.shapeChannel = await holdGroupShape(this.ctx.connection, this.options);
        const partitions = await topology.partitions(topic);
        const created = await topology.queueMissing(names.partitionQueue(topic, group, 0));
        await topology.orderedGroup(topic, group, partitions, tags, this.queueOptions());
        if (created) await releaseUnrouted(this.ctx, topic);
        this.assigner = new PartitionAssigner({
          connection: this.ctx.connection,
          publishing: this.ctx.publishing,
          topology,
          topic,
          group,
          partitions,
          tags,
          queueOptions: this.queueOptions(),
          heartbeatMs: this.ctx.options.memberHeartbeatMs,
          host: this,
          // The engine logs through the broker's report and emits an `error` event.
          report: (context, error) => this.engine.report(context, error),
        });
        await this.assigner.start();
        return;
      }
    }
  }

  private streamOffset(): unknown {
    if (this.streamNext !== undefined) return this.streamNext;
    const from = this.options.startFrom;
    if (from === 'earliest') return 'first';
    if (from === 'latest') return 'next';
    // Stream timestamps are whole seconds; earlier messages of that second are skipped by mq-timestamp.
    return { '!': 'timestamp', value: Math.floor(from.timestamp / 1000) };
  }

  private async startSingle(queue: string, args?: Record<string, unknown>): Promise<void> {
    const consumer = this.newConsumer(queue, undefined, args);
    this.single = consumer;
    await consumer.start();
  }

  private newConsumer(queue: string, partition: number | undefined, args?: Record<string, unknown>) {
    const consumer = new QueueConsumer({
      connection: this.ctx.connection,
      queue,
      partition,
      prefetch: this.prefetch,
      onDelivery: (c, message) => this.deliver(c, message),
      onLost: (c) => this.lost(c),
      consumeArguments: args,
    });
    // One id per partition (or the one queue) across consumers, so a key's lane is the same
    // for a consumer and its successor after a reconnect: they never run one key at once.
    this.claims.set(consumer, this.engine.assign(partition === undefined ? 'q' : `p${partition}`, partition));
    return consumer;
  }

  /** The consumer's deliveries are no longer handed out; waits (bounded) for its running handlers. */
  private async release(consumer: QueueConsumer, waitMs?: number): Promise<void> {
    consumer.stop();
    const claim = this.claims.get(consumer);
    if (claim === undefined) return;
    this.claims.delete(consumer);
    await this.engine.revoke(claim, waitMs);
  }

  owned(): ReadonlySet<number> {
    return new Set(this.partitions.keys());
  }

  async startPartition(partition: number): Promise<void> {
    if (this.closing.signal.aborted || this.partitions.has(partition)) return;
    const consumer = this.newConsumer(names.partitionQueue(this.topic, this.group, partition), partition);
    this.partitions.set(partition, consumer);
    try {
      await consumer.start();
    } catch (error) {
      if (this.partitions.get(partition) === consumer) this.partitions.delete(partition);
      await this.release(consumer, 0);
      await consumer.close();
      throw error;
    }
  }

  async stopPartition(partition: number): Promise<void> {
    const consumer = this.partitions.get(partition);
    if (consumer === undefined) return;
    // Not basic.cancel first: the next consumer would become active before this one's unacked
    // deliveries were back in the queue, and could overtake them.
    await this.release(consumer);
    await consumer.close();
    if (this.partitions.get(partition) === consumer) this.partitions.delete(partition);
  }

  /** Closes whatever consumers and group membership exist now. */
  private async tearDown(): Promise<void> {
    await this.assigner?.stop();
    const consumers = [...this.partitions.values(), ...(this.single ? [this.single] : [])];
    for (const c of consumers) void this.release(c, 0);
    await Promise.all(consumers.map((c) => c.close()));
    this.partitions.clear();
    await this.shapeChannel?.close().catch(() => {});
    this.shapeChannel = undefined;
  }

  private lost(consumer: QueueConsumer): void {
    // Its channel is gone, and with it every unacked delivery: no handler result can be acked.
    void this.release(consumer, 0);
    if (consumer.partition !== undefined && this.partitions.get(consumer.partition) === consumer) {
      this.partitions.delete(consumer.partition);
    }
    // A dropped connection closes channels just before it reports itself down: look after that.
    setImmediate(() => {
      if (this.closing.signal.aborted || !this.ctx.connection.connected) return; // resume() handles it
      // The broker cancelled the consumer (its queue was deleted): declare again, consume again.
      if (consumer === this.single) {
        this.ctx.topology.forget();
        this.onReconnected();
      } else if (consumer.partition !== undefined) void this.assigner?.rebalance();
    });
  }

  private async resume(): Promise<void> {
    for (let delay = 100; !this.closing.signal.aborted; delay = Math.min(delay * 2, 5000)) {
      try {
        if (this.assigner !== undefined) {
          await this.assigner.stop(); // first: a balancing step in flight may still start consumers
          this.assigner = undefined;
          for (const c of this.partitions.values()) {
            void this.release(c, 0);
            await c.close();
          }
          this.partitions.clear();
        }
        if (this.single !== undefined) {
          void this.release(this.single, 0);
          await this.single.close();
        }
        await this.shapeChannel?.close().catch(() => {});
        await this.setUp();
        if (this.closing.signal.aborted) await this.tearDown(); // closed while resuming
        return;
      } catch (error) {
        if (!this.closing.signal.aborted)
          this.ctx.connection.report(
            `subscription to ${this.topic} (group ${this.group}) could not resume, trying again in ${delay} ms`,
            error,
          );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private deliver(consumer: QueueConsumer, message: ConsumeMessage): void {
    const claim = this.claims.get(consumer);
    if (claim === undefined) return; // released: stays unacked, back to the queue with its channel
    const streamOffset = this.kind === 'stream' ? numericHeader(message, 'x-stream-offset') : undefined;
    const record = toRecord(
      message,
      this.topic,
      this.group,
      consumer.partition,
      streamOffset === undefined ? undefined : String(streamOffset),
    );
    if (streamOffset !== undefined && this.beforeStart(record)) {
      consumer.ack(message.fields.deliveryTag);
      return;
    }
    this.engine.deliver(claim, Object.assign(record, { consumer, message, streamOffset }));
  }

  settle(record: RabbitRecord, settlement: 'ack' | 'requeue'): void {
    // 'requeue': left unacked; closing the consumer's channel returns it to the queue in its place.
    if (settlement === 'requeue' || record.consumer.dead) return;
    if (record.streamOffset !== undefined)
      this.streamNext = Math.max(this.streamNext ?? 0, record.streamOffset + 1);
    record.consumer.ack(record.message.fields.deliveryTag);
  }

  /** Stream reads start at a second's boundary; drop what was produced before the requested ms. */
  private beforeStart(record: ReceivedRecord): boolean {
    const from = this.options.startFrom;
    if (typeof from !== 'object' || this.streamNext !== undefined) return false;
    const produced = Number(record.headers[H.timestamp] ?? record.timestamp);
    return produced < from.timestamp;
  }

  private async copyForRetry(record: RabbitRecord, copy: RetryCopy): Promise<void> {
    const { consumer, message } = record;
    const extra: Record<string, string> = {
      [H.attempt]: String(copy.attempt),
      [H.timestamp]: record.headers[H.timestamp] ?? String(record.timestamp),
      [H.targetTopic]: this.topic,
      [H.targetGroup]: this.group,
    };
    const content = toBuffer(record.payload);
    const tag = routingKey(record.headers[H.tag]);
    const stamp = message.properties.timestamp as number | undefined;
    if (copy.delayMs <= 0) {
      const options = publishOptions(record.headers, record.key, { extra, timestampSeconds: stamp });
      await this.ctx.publisher.publish('', consumer.queue, content, options);
      return;
    }
    const tiers = delayTiers(copy.delayMs);
    const target = { kind: 'queue', queue: consumer.queue } as const;
    await this.ctx.topology.delayRoute(tiers, target);
    const options = publishOptions(record.headers, record.key, {
      extra: { ...extra, ...hopHeaders(tiers, target) },
      timestampSeconds: stamp,
    });
    await this.ctx.publisher.publish(names.delayTier(tiers[0] as number), tag, content, options);
  }

  async publishDeadLetter(record: RabbitRecord, topic: string, headers: Headers): Promise<void> {
    const message = record.message;
    await this.ctx.topology.deadLetterTopic(topic);
    const options = publishOptions(headers, record.key, {
      timestampSeconds: message.properties.timestamp as number | undefined,
    });
    await this.ctx.publisher.publish(
      names.topicExchange(topic),
      routingKey(headers[H.tag]),
      toBuffer(record.payload),
      options,
    );
  }

  async stopDelivering(): Promise<void> {
    this.closing.abort();
    this.ctx.connection.off('reconnected', this.onReconnected);
    // Partition consumers are not cancelled first, for the reason given in stopPartition.
    for (const c of this.partitions.values()) c.stop();
    await this.single?.cancel();
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.ctx.connection.off('reconnected', this.onReconnected);
    await this.tearDown();
    if (this.kind === 'broadcast')
      await this.ctx.topology
        .deleteQueue(names.groupQueue(this.topic, this.group))
        .catch((error: unknown) => {
          this.ctx.connection.report(`broadcast queue of ${this.topic} not deleted`, error);
        });
    this.onClosed();
  }
}

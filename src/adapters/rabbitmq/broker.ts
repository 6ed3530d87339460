import type { Backlog, Broker, MessageStream, Producer, Subscription } from '../../core/broker.js';
import { ClosedError, UnsupportedError } from '../../core/errors.js';
import type { EventHub, MqEventListener, MqEventName } from '../../core/events.js';
import type { Logger } from '../../core/logger.js';
import type { BatchHandler, Handler } from '../../core/message.js';
import {
  groupName,
  type ProducerOptions,
  resolveEnsureTopic,
  resolveProducerOptions,
  resolveSubscription,
  type SubscribeOptions,
  userTopicName,
} from '../../core/options.js';
import { PublishEvents } from '../../core/publish-events.js';
import { pull } from '../../core/pull.js';
import { SubscriptionSet } from '../../core/subscription-set.js';
import { MAX_MESSAGE_BYTES, rabbitMqCapabilities } from './capabilities.js';
import type { RabbitConnection } from './connection.js';
import type { ManagementApi } from './management.js';
import { names } from './names.js';
import type { ResolvedRabbitMqOptions } from './options.js';
import { RabbitMqProducer } from './producer.js';
import { Publisher } from './publisher.js';
import { Topology } from './topology.js';
import { RabbitMqTransport } from './transport.js';

/** A connection to RabbitMQ; see index.ts for the topology it declares. */
export class RabbitMqBroker implements Broker {
  readonly kind = 'rabbitmq';
  readonly capabilities = rabbitMqCapabilities;
  private readonly topology: Topology;
  /** Confirmed publishes of retried and dead-lettered copies, shared by subscriptions. */
  private readonly publisher: Publisher;
  private readonly subscriptions: SubscriptionSet;
  private readonly producers = new Set<RabbitMqProducer>();
  private closed = false;

  /**
   * @param connection consumers, acks and declarations
   * @param publishing producers and the retry / dead-letter publisher. RabbitMQ blocks a
   *   connection that publishes during a memory or disk alarm; were acks on it too, consumers
   *   could not drain the queues whose size raised the alarm.
   */
  constructor(
    private readonly connection: RabbitConnection,
    private readonly publishing: RabbitConnection,
    private readonly options: ResolvedRabbitMqOptions,
    private readonly logger: Logger,
    private readonly events: EventHub,
    /** With `managementUrl`: unacknowledged counts for `backlog`. */
    private readonly management?: ManagementApi,
  ) {
    this.topology = new Topology(connection, publishing, options);
    this.publisher = new Publisher(publishing, {
      confirm: true,
      timeoutMs: 30_000,
      onChannelError: () => this.topology.forget(),
    });
    this.subscriptions = new SubscriptionSet(this.kind, events, logger);
    // Each of the two connections drops and comes back on its own: one event each time.
    for (const c of [connection, publishing]) {
      c.on('disconnected', (error) => {
        if (events.has('connection-lost')) events.emit('connection-lost', { broker: this.kind, error });
      });
      c.on('reconnected', () => {
        if (events.has('connection-restored')) events.emit('connection-restored', { broker: this.kind });
      });
    }
  }

  producer(options?: ProducerOptions): Producer {
    this.assertOpen();
    const resolved = resolveProducerOptions(options, { idempotent: false });
    const producer = new RabbitMqProducer(
      this.publishing,
      this.topology,
      resolved,
      MAX_MESSAGE_BYTES,
      this.logger,
      new PublishEvents(this.events, this.kind),
      (p) => this.producers.delete(p),
    );
    this.producers.add(producer);
    return producer;
  }

  subscribe<T>(options: SubscribeOptions<T>, handler: Handler<T> | BatchHandler<T>): Promise<Subscription>;
  async subscribe<T>(
    options: SubscribeOptions<T>,
    handler: Handler<T> | BatchHandler<T>,
  ): Promise<Subscription> {
    this.assertOpen();
    const { options: resolved, handler: checked } = resolveSubscription(options, handler);
    if (typeof resolved.startFrom === 'object' && !this.topology.isStream(resolved.topic)) {
      throw new UnsupportedError(
        `startFrom { timestamp } needs a retained log: RabbitMQ queues drop what they delivered. Declare '${resolved.topic}' as a stream topic (rabbitmq.streams) to replay it by time`,
      );
    }
    const transport = new RabbitMqTransport(
      {
        connection: this.connection,
        publishing: this.publishing,
        topology: this.topology,
        options: this.options,
        publisher: this.publisher,
      },
      resolved,
      () => {},
    );
    return this.subscriptions.start(transport, {
      subscription: resolved,
      handler: checked,
      tagFilter: transport.tagFilter,
      report: (what, error) => this.connection.report(what, error),
    });
  }

  consume<T>(options: SubscribeOptions<T>): MessageStream<T> {
    return pull((o, h) => this.subscribe(o, h), options);
  }

  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    return this.events.on(event, listener);
  }

  async ensureTopic(topic: string, options: { partitions?: number } = {}): Promise<void> {
    this.assertOpen();
    const { topic: name, partitions } = resolveEnsureTopic(topic, options);
    await this.topology.topic(name);
    if (partitions !== undefined) await this.topology.raisePartitions(name, partitions);
  }

  /**
   * Messages per queue of the group: its one queue (reported as partition 0) or each partition
   * queue. Ready messages come from passive declares (exact, now). Deliveries consumers hold
   * unacknowledged are invisible to AMQP: they are added (as `inFlight`) only with
   * `managementUrl`, from the management plugin's last sample. `consumers` is the queue's
   * consumer count (with single active consumer: every registered one, one of them active).
   */
  async backlog(topic: string, group: string): Promise<Backlog> {
    this.assertOpen();
    const t = userTopicName(topic, 'backlog.topic');
    const g = groupName(group, 'backlog.group');
    const partitions: Backlog['partitions'] = [];
    const add = async (partition: number, queue: string, stats: { ready: number; consumers: number }) => {
      const inFlight = await this.management?.unacked(queue);
      const { ready, consumers } = stats;
      partitions.push(
        inFlight === undefined
          ? { partition, backlog: ready, consumers }
          : { partition, backlog: ready + inFlight, inFlight, consumers },
      );
    };
    const single = await this.queueStats(names.groupQueue(t, g));
    if (single !== undefined) await add(0, names.groupQueue(t, g), single);
    else {
      const count = await this.topology.partitions(t);
      for (let p = 0; p < count; p++) {
        const queue = names.partitionQueue(t, g, p);
        const stats = await this.queueStats(queue);
        if (stats !== undefined) await add(p, queue, stats);
      }
    }
    return { topic: t, group: g, total: partitions.reduce((sum, p) => sum + p.backlog, 0), partitions };
  }

  /**
   * Ready messages and consumers of `queue`, or undefined when it does not exist (a passive
   * declare on its own channel).
   */
  private async queueStats(queue: string): Promise<{ ready: number; consumers: number } | undefined> {
    const channel = await this.connection.channel();
    try {
      const ok = await channel.checkQueue(queue);
      return { ready: ok.messageCount, consumers: ok.consumerCount };
    } catch {
      return undefined; // 404: the failed passive declare closed the channel
    } finally {
      await channel.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.subscriptions.closeAll();
    await Promise.all([...this.producers].map((p) => p.close()));
    await this.publisher.close();
    await Promise.all([this.connection.close(), this.publishing.close()]);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('RabbitMQ broker connection is closed');
  }
}

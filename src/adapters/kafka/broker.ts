import type {
  Backlog,
  Broker,
  Capabilities,
  MessageStream,
  Producer,
  Subscription,
} from '../../core/broker.js';
import { ClosedError } from '../../core/errors.js';
import type { EventHub, MqEventListener, MqEventName } from '../../core/events.js';
import { type Logger, safeLog } from '../../core/logger.js';
import type { BatchHandler, Handler } from '../../core/message.js';
import {
  type ProducerOptions,
  resolveEnsureTopic,
  resolveProducerOptions,
  resolveSubscription,
  type SubscribeOptions,
} from '../../core/options.js';
import { PublishEvents } from '../../core/publish-events.js';
import { pull } from '../../core/pull.js';
import { SubscriptionSet } from '../../core/subscription-set.js';
import type { KafkaClient, OutgoingRecord, ProducerClient, RecordPosition } from './client.js';
import type { KafkaContext } from './context.js';
import { DelayForwarder } from './delay-forwarder.js';
import { DELAY_TIERS, TIER_PARTITIONS, tierTopic, undeliverableTopic } from './delay-tiers.js';
import type { ResolvedKafkaOptions } from './options.js';
import { KafkaProducer, MAX_MESSAGE_BYTES } from './producer.js';
import { SendQueue } from './send-queue.js';
import { TopicAdmin } from './topic-admin.js';
import { KafkaTransport } from './transport.js';

/**
 * What the Kafka adapter does: replay (by offsets and timestamps), partitions, durability and
 * every acks level; tags are filtered in the client and delays go through delay-tier topics.
 */
export const kafkaCapabilities: Capabilities = Object.freeze({
  replay: true,
  brokerSideTagFilter: false,
  keyIsolation: true,
  partitions: true,
  nativeDelay: false,
  durable: true,
  acks: Object.freeze(['all', 'leader', 'none'] as const),
  maxMessageBytes: MAX_MESSAGE_BYTES,
});

/** Tier records wait at most an hour between hops; a week covers a forwarder being down a while. */
const TIER_TOPIC_CONFIG = { 'retention.ms': String(7 * 24 * 3600 * 1000) };

/** A connection to a Kafka cluster. See the module documentation in `index.ts`. */
export class KafkaBroker implements Broker, KafkaContext {
  readonly kind = 'kafka';
  readonly capabilities = kafkaCapabilities;
  readonly topics: TopicAdmin;
  private readonly producerClients = new Map<boolean, ProducerClient>();
  private readonly producers = new Set<KafkaProducer>();
  private readonly subscriptions: SubscriptionSet;
  private internal: SendQueue | undefined;
  private forwarder: DelayForwarder | undefined;
  private tiers: Promise<void> | undefined;
  private closed = false;
  /** The one close in progress: a second caller waits for it too. */
  private closing: Promise<void> | undefined;
  /** `ensureTopic`, `backlog` and `subscribe` calls in flight, which close waits for. */
  private readonly calls = new Set<Promise<unknown>>();

  constructor(
    readonly client: KafkaClient,
    readonly options: ResolvedKafkaOptions,
    readonly logger: Logger,
    readonly events: EventHub,
  ) {
    this.topics = new TopicAdmin(client.admin, (topic, count) => client.partitionsAdded(topic, count));
    this.subscriptions = new SubscriptionSet(this.kind, events, logger);
  }

  producer(options?: ProducerOptions): Producer {
    this.assertOpen();
    const producer = new KafkaProducer(
      this,
      resolveProducerOptions(options, { idempotent: true }),
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
    return this.subscriptions.start(new KafkaTransport(this, resolved, () => {}), {
      subscription: resolved,
      handler: checked,
    });
  }

  consume<T>(options: SubscribeOptions<T>): MessageStream<T> {
    return pull((o, h) => this.subscribe(o, h), options);
  }

  /**
   * Subscribes to the connection's events. Never `connection-lost` or `connection-restored`:
   * kafkajs keeps a socket per broker, opens a new one on the next request by itself and
   * reports neither the loss nor the return (its DISCONNECT events mean a `disconnect()` call,
   * or a consumer crash). The nearest signal, a consumer's crash, comes per subscription, only
   * once kafkajs's retries ran out, and for other failures too (a coordinator that moved, a
   * rebalance that timed out): reported as a lost connection it would mislead. A subscription
   * that stops for good is an `error` event.
   */
  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    return this.events.on(event, listener);
  }

  async ensureTopic(topic: string, options: { partitions?: number } = {}): Promise<void> {
    this.assertOpen();
    const { topic: name, partitions } = resolveEnsureTopic(topic, options);
    await this.track(this.topics.ensureTopic(name, partitions));
  }

  backlog(topic: string, group: string): Promise<Backlog> {
    this.assertOpen();
    return this.track(this.topics.backlog(topic, group));
  }

  /** Keeps `call` among the calls close waits for until it settles. */
  private track<T>(call: Promise<T>): Promise<T> {
    this.calls.add(call);
    const done = () => this.calls.delete(call);
    call.then(done, done);
    return call;
  }

  producerClient(idempotent: boolean): ProducerClient {
    let client = this.producerClients.get(idempotent);
    if (client === undefined) {
      client = this.client.producer({ idempotent });
      this.producerClients.set(idempotent, client);
    }
    return client;
  }

  publish(record: OutgoingRecord): Promise<RecordPosition> {
    if (this.internal === undefined) {
      const client = this.producerClient(true);
      const { batchSize, compression } = this.options.producer;
      const timeoutMs = this.options.client.requestTimeoutMs;
      this.internal = new SendQueue((records) => client.send(records, { acks: -1, compression, timeoutMs }), {
        lingerMs: 0,
        batchSize,
        maxInFlight: 1,
      });
    }
    return this.internal.push(record);
  }

  prepareDelays(): Promise<void> {
    this.startForwarder();
    return this.ensureTiers();
  }

  startForwarder(): void {
    if (!this.options.delay.forward || this.closed || this.forwarder !== undefined) return;
    // A forwarder that failed to start or stopped for good is stopped and forgotten: the next
    // delayed send or subscription starts another.
    const drop = () => {
      if (this.forwarder === forwarder) this.forwarder = undefined;
      void forwarder.stop();
    };
    const forwarder = new DelayForwarder(this, drop);
    this.forwarder = forwarder;
    forwarder
      .start(() => this.ensureTiers())
      .catch((error: Error) => {
        // Closing the connection while the forwarder starts is no failure to report.
        if (!this.closed) this.report(`delay forwarder not started: ${error.message}`);
        drop();
      });
  }

  private ensureTiers(): Promise<void> {
    const prefix = this.options.delay.topicPrefix;
    this.tiers ??= Promise.all([
      ...DELAY_TIERS.map((tier) =>
        this.topics.ensureOnce(tierTopic(prefix, tier), TIER_PARTITIONS, TIER_TOPIC_CONFIG),
      ),
      this.topics.ensureOnce(undeliverableTopic(prefix), 1),
    ]).then(
      () => {},
      (error: unknown) => {
        this.tiers = undefined;
        throw error;
      },
    );
    return this.tiers;
  }

  report(text: string): void {
    safeLog(this.logger, 'warn', { broker: 'kafka' }, text);
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    // Calls in flight settle first (their waits for topics end with ClosedError), so that what
    // they open (a subscription's consumer, say) is closed below rather than left behind.
    this.client.closing();
    if (this.calls.size > 0) await Promise.allSettled([...this.calls]);
    await this.subscriptions.closeAll();
    await Promise.all([...this.producers].map((p) => p.close()));
    await this.internal?.drained();
    await this.forwarder?.stop();
    await Promise.all([...this.producerClients.values()].map((p) => p.disconnect()));
    await this.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('kafka broker connection is closed');
  }
}

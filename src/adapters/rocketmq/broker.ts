import { Producer as ClientProducer } from 'rocketmq-client-nodejs';
import type { AdapterContext } from '../../core/adapter-context.js';
import type {
  Backlog,
  Broker,
  Capabilities,
  MessageStream,
  Producer,
  Subscription,
} from '../../core/broker.js';
import { ClosedError, ConfigError, type MqError, TimeoutError, UnsupportedError } from '../../core/errors.js';
import type { MqEventListener, MqEventName } from '../../core/events.js';
import type { BatchHandler, Handler, Headers, OutgoingMessage, SendResult } from '../../core/message.js';
import { NATIVE_TRANSACTIONS } from '../../core/native-transactions.js';
import { oneWayReporter } from '../../core/one-way.js';
import {
  groupName,
  otherTagsError,
  type ProducerOptions,
  resolveEnsureTopic,
  resolveProducerOptions,
  resolveSubscription,
  type SubscribeOptions,
  tagsKey,
  userTopicName,
} from '../../core/options.js';
import { PublishEvents } from '../../core/publish-events.js';
import { pull } from '../../core/pull.js';
import { SubscriptionSet } from '../../core/subscription-set.js';
import { encodeMessage, H, type WireMessage } from '../../core/wire.js';
import { RocketMqAdmin } from './admin.js';
import { clientLogger, toMqError } from './client-errors.js';
import type { RocketMqContext } from './context.js';
import { nativeName } from './names.js';
import type { ResolvedRocketMqOptions } from './options.js';
import { encodeProperties, messageGroupOf, usableMessageKey } from './properties.js';
import { RocketMqTransactions } from './transactions.js';
import { EMPTY_BODY, RocketMqTransport } from './transport.js';

/**
 * Largest body: the broker's default `maxMessageSize` (4 MiB) bounds the whole stored message
 * and gRPC's default frame limit (4 MiB) the received one; 64 KiB are left for properties.
 */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024 - 64 * 1024;

export const rocketmqCapabilities: Capabilities = Object.freeze({
  // startFrom { timestamp } and 'earliest' place a new group's offsets (broker admin API).
  replay: true,
  // RocketMQ filters tags on the broker (a member never receives other tags), but its backlog
  // (max offset minus the group's offset) counts every tag until a pop reads past them: the
  // flag's observable contract is the false one.
  brokerSideTagFilter: false,
  keyIsolation: false,
  // Queues are partitions: a key is a FIFO message group, hashed to one queue.
  partitions: true,
  // Delivery timestamps (the broker's timer wheel).
  nativeDelay: true,
  durable: true,
  // A send returns once the broker stored the message; the gRPC client has no one-way send.
  acks: Object.freeze(['all'] as const),
  maxMessageBytes: MAX_MESSAGE_BYTES,
});

/**
 * What the adapter uses of rocketmq-client-nodejs's Producer, declared here so that mqkit's
 * published declarations do not need the optional peer.
 */
export interface SendingClient {
  send(message: {
    topic: string;
    body: Buffer;
    tag?: string;
    keys?: string[];
    messageGroup?: string;
    deliveryTimestamp?: Date;
    properties?: Map<string, string>;
  }): Promise<unknown>;
  shutdown(): Promise<void>;
}

/** A connection to a RocketMQ 5 proxy (gRPC), plus the name server for administration. */
export class RocketMqBroker implements Broker, RocketMqContext {
  readonly kind = 'rocketmq';
  readonly capabilities = rocketmqCapabilities;
  readonly admin: RocketMqAdmin;
  readonly clientOptions: RocketMqContext['clientOptions'];
  private readonly subscriptions: SubscriptionSet;
  private readonly producers = new Set<RocketMqProducer>();
  private readonly members = new Map<string, { tags: string; order: string; count: number }>();
  private shared: Promise<SendingClient> | undefined;
  private closed = false;

  constructor(
    readonly options: ResolvedRocketMqOptions,
    private readonly context: AdapterContext,
    private readonly secrets: readonly string[],
  ) {
    this.admin = new RocketMqAdmin(options.namesrv, options.requestTimeoutMs);
    this.subscriptions = new SubscriptionSet(this.kind, context.events, context.logger);
    this.clientOptions = {
      endpoints: options.endpoints,
      namespace: options.namespace,
      ...(options.credentials === undefined ? {} : { sessionCredentials: options.credentials }),
      requestTimeout: options.requestTimeoutMs,
      // Always given: without it the client logs to ~/logs/rocketmq/rocketmq_client_nodejs.log.
      logger: clientLogger(context.logger, secrets),
    };
  }

  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    return this.context.events.on(event, listener);
  }

  error(error: unknown, what: string): MqError {
    return toMqError(error, what, this.secrets);
  }

  /** The connection's shared client producer, started on first use. */
  clientProducer(): Promise<SendingClient> {
    this.shared ??= (async () => {
      const producer = new ClientProducer({ ...this.clientOptions });
      await producer.startup();
      return producer;
    })();
    this.shared.catch(() => {
      this.shared = undefined;
    });
    return this.shared;
  }

  async publishRaw(wire: WireMessage): Promise<void> {
    await sendWire(this, await this.clientProducer(), wire);
  }

  producer(options?: ProducerOptions): Producer {
    this.assertOpen();
    const resolved = resolveProducerOptions(options);
    if (!this.capabilities.acks.includes(resolved.acks))
      throw new UnsupportedError(
        `producer.acks '${resolved.acks}': RocketMQ's gRPC client sends synchronously (acks 'all') only`,
      );
    const producer = new RocketMqProducer(
      this,
      resolved.timeoutMs,
      oneWayReporter(resolved.onError, this.context.logger),
      new PublishEvents(this.context.events, this.kind),
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
    const topic = nativeName(resolved.topic, 'subscribe.topic');
    const group = nativeName(resolved.group, 'subscribe.group');
    // Members of one group must filter the same tags: RocketMQ keeps one subscription per group.
    const memberKey = `${topic}\u0000${group}`;
    const tags = tagsKey(resolved.tags);
    const peer = this.members.get(memberKey);
    if (peer !== undefined && peer.tags !== tags) throw otherTagsError(resolved);
    // One group is a FIFO group (order 'key' or 'partition') or not ('concurrent'), not both.
    const fifo = resolved.order === 'concurrent' ? 'concurrent' : 'fifo';
    if (peer !== undefined && peer.order !== fifo)
      throw new ConfigError(
        'subscribe.order',
        `a RocketMQ group is a FIFO group (order 'key' or 'partition') or not ('concurrent'); ${resolved.group} has running members of the other kind: use another group`,
      );
    if (peer === undefined) this.members.set(memberKey, { tags, order: fifo, count: 1 });
    else peer.count++;
    const leave = () => {
      const m = this.members.get(memberKey);
      if (m !== undefined && --m.count === 0) this.members.delete(memberKey);
    };
    const transport = new RocketMqTransport(this, resolved, topic, group);
    try {
      const subscription = await this.subscriptions.start(transport, {
        subscription: resolved,
        handler: checked,
      });
      void (subscription as unknown as { ended: Promise<void> }).ended.then(leave);
      return subscription;
    } catch (error) {
      leave();
      throw error;
    }
  }

  consume<T>(options: SubscribeOptions<T>): MessageStream<T> {
    return pull((o, h) => this.subscribe(o, h), options);
  }

  async ensureTopic(topic: string, options?: { partitions?: number }): Promise<void> {
    this.assertOpen();
    const resolved = resolveEnsureTopic(topic, options);
    await this.admin.ensureTopic(nativeName(resolved.topic, 'ensureTopic.topic'), resolved.partitions);
  }

  async backlog(topic: string, group: string): Promise<Backlog> {
    const name = userTopicName(topic, 'backlog.topic');
    const native = nativeName(name, 'backlog.topic');
    const nativeGroup = nativeName(groupName(group, 'backlog.group'), 'backlog.group');
    const refs = await this.admin.queues(native);
    const partitions = await Promise.all(
      refs.map(async (ref) => {
        const [end, committed] = await Promise.all([
          this.admin.maxOffset(ref, native),
          this.admin.consumerOffset(ref, native, nativeGroup),
        ]);
        const from = committed ?? (await this.admin.minOffset(ref, native));
        const backlog = Number(end > from ? end - from : 0n);
        return {
          partition: ref.partition,
          backlog,
          ...(committed === undefined ? {} : { committed: committed.toString() }),
          end: end.toString(),
        };
      }),
    );
    return { topic, group, total: partitions.reduce((s, p) => s + p.backlog, 0), partitions };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.subscriptions.closeAll();
    await Promise.all([...this.producers].map((p) => p.close()));
    const shared = this.shared;
    this.shared = undefined;
    if (shared !== undefined) await (await shared.catch(() => undefined))?.shutdown().catch(() => {});
    this.admin.close();
  }

  assertOpen(): void {
    if (this.closed) throw new ClosedError('rocketmq broker connection is closed');
  }
}

/** Sends one encoded message: topic created if missing, key as message key and FIFO group, tag native. */
async function sendWire(broker: RocketMqBroker, client: SendingClient, wire: WireMessage): Promise<void> {
  const topic = nativeName(wire.topic, 'message.topic');
  if (broker.admin.available) await broker.admin.ensureExists(topic);
  const headers: Headers = { ...wire.headers };
  delete headers[H.tag]; // native tag
  // RocketMQ refuses an empty body: one byte stands in for it, marked by a property.
  const empty = wire.payload.byteLength === 0;
  if (empty) headers[EMPTY_BODY] = '1';
  if (wire.key !== undefined) headers[H.key] = wire.key; // keys are space-separated natively
  const properties = encodeProperties(headers);
  try {
    await client.send({
      topic,
      body: empty
        ? Buffer.from([0])
        : Buffer.from(wire.payload.buffer, wire.payload.byteOffset, wire.payload.byteLength),
      ...(wire.tag === undefined ? {} : { tag: wire.tag }),
      ...(usableMessageKey(wire.key) ? { keys: [wire.key] } : {}),
      // RocketMQ refuses a message group on a delayed message: a delayed message has no order anyway.
      ...(wire.key !== undefined && wire.key !== '' && wire.delayMs === 0
        ? { messageGroup: messageGroupOf(wire.key) }
        : {}),
      ...(wire.delayMs > 0 ? { deliveryTimestamp: new Date(Date.now() + wire.delayMs) } : {}),
      properties,
    });
  } catch (error) {
    throw broker.error(error, `sending to ${wire.topic}`);
  }
}

class RocketMqProducer implements Producer {
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Per key, the settling of its last send in flight (see `inKeyOrder`). */
  private readonly lastOfKey = new Map<string, Promise<void>>();
  /** RocketMQ's own transactional messages, for `halfMessages`. */
  readonly [NATIVE_TRANSACTIONS]: RocketMqTransactions;

  constructor(
    private readonly broker: RocketMqBroker,
    /** Past it a send rejects with a retriable TimeoutError (the message may still be stored). */
    private readonly timeoutMs: number,
    private readonly reportOneWay: (error: unknown, message: OutgoingMessage<unknown>) => void,
    private readonly published: PublishEvents,
    private readonly onClose: (p: RocketMqProducer) => void,
  ) {
    this[NATIVE_TRANSACTIONS] = new RocketMqTransactions(broker, MAX_MESSAGE_BYTES);
  }

  async send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    if (this.closed) throw new ClosedError('producer is closed');
    const wire = encodeMessage(message as OutgoingMessage<unknown>, MAX_MESSAGE_BYTES);
    return this.track(this.inKeyOrder(wire));
  }

  async sendBatch(messages: readonly OutgoingMessage<unknown>[]): Promise<SendResult[]> {
    if (this.closed) throw new ClosedError('producer is closed');
    if (!Array.isArray(messages)) throw new ConfigError('sendBatch.messages', 'must be an array');
    const now = Date.now();
    const wires = messages.map((m) => encodeMessage(m, MAX_MESSAGE_BYTES, now));
    return this.track(Promise.all(wires.map((wire) => this.inKeyOrder(wire))));
  }

  /**
   * Sends `wire` once the producer's previous send of the same key has ended (stored or
   * refused), so one producer stores a key's messages in call order, also across `send` and
   * `sendBatch` calls in flight at once. The gRPC client sends every message as an RPC of its
   * own, and concurrent RPCs may be stored in any order; Kafka's and RabbitMQ's producers keep
   * call order on their connection, and a service moving between brokers should not find its
   * keys reordered here. Keys run in parallel; messages without a key go at once.
   *
   * The chain follows the RPCs (each bounded by the client's request timeout), not the callers'
   * timeouts: a send whose caller timed out still holds back the key's next one until its RPC
   * ends, since it may yet be stored. Each call's `timeoutMs` counts from the call, waiting
   * included; a message whose turn comes after its caller timed out is not sent.
   */
  private inKeyOrder(wire: WireMessage): Promise<SendResult> {
    const deadline = Date.now() + this.timeoutMs;
    const key = wire.key;
    if (key === undefined) return this.bounded(wire, this.writeOnce(wire));
    const previous = this.lastOfKey.get(key);
    const attempt =
      previous === undefined
        ? this.writeOnce(wire)
        : previous.then(() => {
            if (Date.now() < deadline) return this.writeOnce(wire);
            throw new TimeoutError(
              `send to ${wire.topic}: not sent within ${this.timeoutMs} ms, waiting behind earlier messages of its key`,
            );
          });
    const ended = attempt.then(
      () => {},
      () => {},
    );
    this.lastOfKey.set(key, ended);
    void ended.then(() => {
      if (this.lastOfKey.get(key) === ended) this.lastOfKey.delete(key);
    });
    return this.bounded(wire, attempt);
  }

  sendOneWay<T>(message: OutgoingMessage<T>): void {
    this.send(message).catch((error: unknown) =>
      this.reportOneWay(error, message as OutgoingMessage<unknown>),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    this.onClose(this);
  }

  private track<R>(p: Promise<R>): Promise<R> {
    this.inFlight.add(p);
    p.finally(() => this.inFlight.delete(p)).catch(() => {});
    return p;
  }

  /** `attempt`, rejected with a retriable TimeoutError past `timeoutMs`; emits the publish events. */
  private async bounded(wire: WireMessage, attempt: Promise<SendResult>): Promise<SendResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new TimeoutError(
              `send to ${wire.topic}: not done within ${this.timeoutMs} ms; the message may still be stored`,
            ),
          ),
        this.timeoutMs,
      );
    });
    try {
      const result = await Promise.race([attempt, timeout]);
      this.published.confirmed(result);
      return result;
    } catch (error) {
      this.published.failed(wire, error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private async writeOnce(wire: WireMessage): Promise<SendResult> {
    const client = await this.broker.clientProducer().catch((e: unknown) => {
      throw this.broker.error(e, 'starting the producer');
    });
    await sendWire(this.broker, client, wire);
    return { id: wire.id, topic: wire.topic };
  }
}

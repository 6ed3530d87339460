import type { AdapterContext } from '../../core/adapter-context.js';
import type {
  Backlog,
  Broker,
  Capabilities,
  MessageStream,
  Producer,
  Subscription,
} from '../../core/broker.js';
import { ClosedError, ConfigError } from '../../core/errors.js';
import type { MqEventListener, MqEventName } from '../../core/events.js';
import type { Logger } from '../../core/logger.js';
import type { BatchHandler, Handler, OutgoingMessage, SendResult } from '../../core/message.js';
import { oneWayReporter } from '../../core/one-way.js';
import {
  groupName,
  otherTagsError,
  type ProducerOptions,
  type ResolvedProducerOptions,
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
import { MemoryGroup } from './group.js';
import type { MemoryState } from './state.js';
import { MemoryTransport } from './transport.js';

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export const memoryCapabilities: Capabilities = Object.freeze({
  replay: true,
  // Every record of the topic stays in the group's partitions; its members skip other tags.
  brokerSideTagFilter: false,
  keyIsolation: true,
  partitions: true,
  nativeDelay: true,
  durable: false,
  acks: Object.freeze(['all', 'leader', 'none'] as const),
  maxMessageBytes: MAX_MESSAGE_BYTES,
});

/** A connection to an embedded broker. Every acks level is immediate: the log is in this process. */
export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  readonly capabilities = memoryCapabilities;
  private readonly subscriptions: SubscriptionSet;
  private readonly producers = new Set<MemoryProducer>();
  private closed = false;
  private readonly logger: Logger;

  constructor(
    private readonly state: MemoryState,
    private readonly context: AdapterContext,
  ) {
    this.logger = context.logger;
    this.subscriptions = new SubscriptionSet(this.kind, context.events, context.logger);
  }

  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    return this.context.events.on(event, listener);
  }

  producer(options?: ProducerOptions): Producer {
    this.assertOpen();
    const producer = new MemoryProducer(
      this.state,
      resolveProducerOptions(options),
      this.logger,
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
    const topic = this.state.topic(resolved.topic);
    const groupKey = `${resolved.topic}\u0000${resolved.group}`;
    let group = this.state.groups.get(groupKey);
    if (group === undefined) {
      group = new MemoryGroup(topic, resolved.group, resolved.startFrom, resolved.mode === 'broadcasting');
      this.state.groups.set(groupKey, group);
    }
    const peer = group.members[0];
    if (peer !== undefined && tagsKey(peer.tags) !== tagsKey(resolved.tags)) throw otherTagsError(resolved);
    const joined = group;
    const transport = new MemoryTransport(this.state, joined, resolved, () => {
      if (joined.ephemeral && joined.members.length === 0) this.state.groups.delete(groupKey);
    });
    return this.subscriptions.start(transport, { subscription: resolved, handler: checked });
  }

  consume<T>(options: SubscribeOptions<T>): MessageStream<T> {
    return pull((o, h) => this.subscribe(o, h), options);
  }

  async ensureTopic(topic: string, options?: { partitions?: number }): Promise<void> {
    this.assertOpen();
    const resolved = resolveEnsureTopic(topic, options);
    this.state.topic(resolved.topic, resolved.partitions ?? 1);
  }

  async backlog(topic: string, group: string): Promise<Backlog> {
    const name = userTopicName(topic, 'backlog.topic');
    const t = this.state.topics.get(name);
    const g = this.state.groups.get(`${name}\u0000${groupName(group, 'backlog.group')}`);
    const partitions = (t?.partitions ?? []).map((log, partition) => {
      // An unknown group has no committed position (as on Kafka): counted from the first retained.
      const from = g === undefined ? log.start : g.committed(partition);
      const oldest = log.end > from ? log.get(from)?.timestamp : undefined;
      return {
        partition,
        backlog: log.end - from,
        ...(g === undefined ? {} : { committed: String(from) }),
        end: String(log.end),
        consumers: g?.owned(partition) === true ? 1 : 0,
        ...(oldest === undefined ? {} : { oldestTimestamp: oldest }),
      };
    });
    return { topic, group, total: partitions.reduce((sum, p) => sum + p.backlog, 0), partitions };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.subscriptions.closeAll();
    await Promise.all([...this.producers].map((p) => p.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('memory broker connection is closed');
  }
}

class MemoryProducer implements Producer {
  private closed = false;
  private readonly reportOneWay: (error: unknown, message: OutgoingMessage<unknown>) => void;

  constructor(
    private readonly state: MemoryState,
    options: ResolvedProducerOptions,
    logger: Logger,
    private readonly published: PublishEvents,
    private readonly onClose: (p: MemoryProducer) => void,
  ) {
    this.reportOneWay = oneWayReporter(options.onError, logger);
  }

  async send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    return this.write(message as OutgoingMessage<unknown>);
  }

  async sendBatch(messages: readonly OutgoingMessage<unknown>[]): Promise<SendResult[]> {
    if (this.closed) throw new ClosedError('producer is closed');
    if (!Array.isArray(messages)) throw new ConfigError('sendBatch.messages', 'must be an array');
    // One clock read per call: the ids and log timestamps of a batch share its millisecond.
    const now = Date.now();
    const wires = messages.map((m) => encodeMessage(m, MAX_MESSAGE_BYTES, now)); // all valid before any is stored
    return wires.map((w) => this.store(w, now));
  }

  sendOneWay<T>(message: OutgoingMessage<T>): void {
    try {
      this.write(message as OutgoingMessage<unknown>);
    } catch (error) {
      this.reportOneWay(error, message as OutgoingMessage<unknown>);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.onClose(this);
  }

  private write(message: OutgoingMessage<unknown>): SendResult {
    if (this.closed) throw new ClosedError('producer is closed');
    return this.store(encodeMessage(message, MAX_MESSAGE_BYTES));
  }

  /** Stores a checked message; storing cannot fail, so every message stored is confirmed. */
  private store(wire: WireMessage, now?: number): SendResult {
    let result: SendResult;
    if (wire.delayMs > 0) {
      const headers = { ...wire.headers, [H.timestamp]: String(Date.now()) };
      // The embedded broker lives and dies with the process; so do its pending delays.
      setTimeout(() => this.state.append(wire, headers), wire.delayMs).unref();
      result = { id: wire.id, topic: wire.topic };
    } else {
      const record = this.state.append(wire, wire.headers, now);
      result = { id: wire.id, topic: wire.topic, partition: record.partition, offset: String(record.offset) };
    }
    this.published.confirmed(result);
    return result;
  }
}

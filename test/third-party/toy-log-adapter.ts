/**
 * A third-party adapter, written only against the public entries `mqkit` and `mqkit/adapter`
 * (nothing under src/ is imported): an in-process partitioned log, as small as an adapter can
 * be. `test/conformance/third-party.test.ts` runs the conformance suite on it unchanged, which
 * is what shows that `mqkit/adapter` is enough to write an adapter with.
 *
 * It keeps every record (no retention), commits per group per partition, gives partition p to
 * member p mod n of a group, and moves a partition only after its old member drained it.
 */
import {
  type Backlog,
  type BatchHandler,
  type Broker,
  type Capabilities,
  ClosedError,
  ConfigError,
  type Handler,
  type Headers,
  type MessageStream,
  type OutgoingMessage,
  type Producer,
  type ProducerOptions,
  type SendResult,
  type SubscribeOptions,
  type Subscription,
  UnsupportedError,
} from 'mqkit';
import {
  type AdapterContext,
  type AdapterFactory,
  type Claim,
  type ConsumerEngine,
  type ConsumerTransport,
  defaultAdapterContext,
  encodeMessage,
  groupName,
  HEADERS,
  type MqEventListener,
  type MqEventName,
  OffsetTracker,
  oneWayReporter,
  partitionForKey,
  pull,
  type ReceivedRecord,
  type ResolvedSubscribeOptions,
  resolveEnsureTopic,
  resolveProducerOptions,
  resolveSubscription,
  SubscriptionSet,
  userTopicName,
} from 'mqkit/adapter';

const MAX_MESSAGE_BYTES = 1024 * 1024;

export const toyCapabilities: Capabilities = Object.freeze({
  replay: true,
  brokerSideTagFilter: false,
  keyIsolation: true,
  partitions: true,
  nativeDelay: true,
  durable: false,
  acks: Object.freeze(['all'] as const),
  maxMessageBytes: MAX_MESSAGE_BYTES,
});

interface Stored {
  offset: number;
  key: string | undefined;
  headers: Headers;
  payload: Uint8Array;
  timestamp: number;
}

interface Topic {
  partitions: Stored[][];
  groups: Set<Group>;
  roundRobin: number;
}

/** One log per name, shared by every connection to `toy://name`. */
class Log {
  readonly topics = new Map<string, Topic>();
  readonly groups = new Map<string, Group>();

  topic(name: string, partitions = 1): Topic {
    let topic = this.topics.get(name);
    if (topic === undefined) {
      topic = { partitions: [], groups: new Set(), roundRobin: 0 };
      this.topics.set(name, topic);
    }
    if (topic.partitions.length < partitions) {
      while (topic.partitions.length < partitions) topic.partitions.push([]);
      for (const group of topic.groups) group.rebalance();
    }
    return topic;
  }

  append(name: string, key: string | undefined, headers: Headers, payload: Uint8Array) {
    const topic = this.topic(name);
    const count = topic.partitions.length;
    const partition = key === undefined ? topic.roundRobin++ % count : partitionForKey(key, count);
    const records = topic.partitions[partition] as Stored[];
    const offset = records.length;
    records.push({ offset, key, headers, payload, timestamp: Date.now() });
    for (const group of topic.groups) group.wake(partition);
    return { partition, offset };
  }
}

const logs = new Map<string, Log>();

/** A consumer group: committed offsets, members, and which member owns each partition. */
class Group {
  readonly members: ToyTransport[] = [];
  private readonly committed: number[] = [];
  private readonly owners: (ToyTransport | undefined)[] = [];
  private readonly handovers: Promise<void>[] = [];

  constructor(
    readonly topic: Topic,
    startFrom: ResolvedSubscribeOptions['startFrom'],
    readonly ephemeral: boolean,
  ) {
    topic.partitions.forEach((records, p) => {
      this.committed[p] =
        startFrom === 'earliest'
          ? 0
          : startFrom === 'latest'
            ? records.length
            : (records.find((r) => r.timestamp >= startFrom.timestamp)?.offset ?? records.length);
    });
    topic.groups.add(this);
  }

  position(partition: number): number {
    return this.committed[partition] ?? 0;
  }

  commit(partition: number, offset: number): void {
    this.committed[partition] = offset;
  }

  wake(partition: number): void {
    this.owners[partition]?.pump();
  }

  join(member: ToyTransport): void {
    this.members.push(member);
    this.rebalance();
  }

  async leave(member: ToyTransport): Promise<void> {
    this.members.splice(this.members.indexOf(member), 1);
    this.rebalance();
    await Promise.all(this.handovers);
    if (this.ephemeral && this.members.length === 0) this.topic.groups.delete(this);
  }

  rebalance(): void {
    const n = this.members.length;
    for (let p = 0; p < this.topic.partitions.length; p++) {
      const next = n === 0 ? undefined : this.members[p % n];
      const current = this.owners[p];
      if (current === next) continue;
      this.owners[p] = next;
      this.handovers[p] = (this.handovers[p] ?? Promise.resolve()).then(async () => {
        await current?.revoke(p);
        if (next !== undefined && this.owners[p] === next) next.assign(p, this.position(p));
      });
    }
  }
}

interface ToyRecord extends ReceivedRecord {
  readonly run: Run;
  readonly at: number;
}

interface Run {
  partition: number;
  claim: Claim;
  tracker: OffsetTracker;
  cursor: number;
}

/** One member: reads its partitions a bounded number ahead and commits as records settle. */
class ToyTransport implements ConsumerTransport<ToyRecord> {
  private engine: ConsumerEngine<ToyRecord> | undefined;
  private readonly runs = new Map<number, Run>();
  private scheduled = false;

  constructor(
    private readonly log: Log,
    readonly group: Group,
    readonly options: ResolvedSubscribeOptions,
    private readonly onClosed: () => void,
  ) {}

  async start(engine: ConsumerEngine<ToyRecord>): Promise<void> {
    this.engine = engine;
    this.group.join(this);
  }

  assign(partition: number, from: number): void {
    if (this.engine === undefined || this.engine.isClosing) return;
    const claim = this.engine.assign(String(partition), partition);
    this.runs.set(partition, { partition, claim, tracker: new OffsetTracker(from), cursor: from });
    this.pump();
  }

  async revoke(partition: number): Promise<void> {
    const run = this.runs.get(partition);
    this.runs.delete(partition);
    if (run !== undefined) await this.engine?.revoke(run.claim);
  }

  pump(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const engine = this.engine;
      if (engine === undefined || engine.isClosing) return;
      const ahead = Math.max(64, engine.concurrency * 4 * (this.options.batch?.maxSize ?? 1));
      for (const run of this.runs.values()) {
        const records = this.group.topic.partitions[run.partition] ?? [];
        while (run.cursor < records.length && engine.inFlight < ahead) {
          const stored = records[run.cursor++] as Stored;
          run.tracker.start(stored.offset);
          engine.deliver(run.claim, {
            run,
            at: stored.offset,
            topic: this.options.topic,
            payload: stored.payload,
            headers: { ...stored.headers },
            key: stored.key,
            timestamp: stored.timestamp,
            partition: run.partition,
            offset: String(stored.offset),
            attempt: 1,
          });
        }
      }
    });
  }

  settle(record: ToyRecord, settlement: 'ack' | 'requeue'): void {
    if (settlement === 'ack') {
      record.run.tracker.finish(record.at);
      this.group.commit(record.run.partition, record.run.tracker.committable());
      this.engine?.committed(record.run.partition, String(record.run.tracker.committable()));
    }
    this.pump();
  }

  async publishDeadLetter(record: ToyRecord, topic: string, headers: Headers): Promise<void> {
    this.log.append(topic, record.key, headers, record.payload);
  }

  stopDelivering(): void {}

  async close(): Promise<void> {
    await this.group.leave(this);
    this.onClosed();
  }
}

class ToyBroker implements Broker {
  readonly kind = 'toy';
  readonly capabilities = toyCapabilities;
  private readonly subscriptions: SubscriptionSet;
  private closed = false;

  constructor(
    private readonly log: Log,
    private readonly context: AdapterContext,
  ) {
    this.subscriptions = new SubscriptionSet(this.kind, context.events, context.logger);
  }

  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    return this.context.events.on(event, listener);
  }

  producer(options?: ProducerOptions): Producer {
    this.assertOpen();
    const resolved = resolveProducerOptions(options);
    if (resolved.acks !== 'all')
      throw new UnsupportedError(`acks '${resolved.acks}': the toy log acknowledges every write at once`);
    const reportOneWay = oneWayReporter(resolved.onError, this.context.logger);
    const write = (message: OutgoingMessage<unknown>): SendResult => {
      this.assertOpen();
      const wire = encodeMessage(message, MAX_MESSAGE_BYTES);
      if (wire.delayMs > 0) {
        const headers = { ...wire.headers, [HEADERS.timestamp]: String(Date.now()) };
        setTimeout(() => this.log.append(wire.topic, wire.key, headers, wire.payload), wire.delayMs).unref();
        return { id: wire.id, topic: wire.topic };
      }
      const { partition, offset } = this.log.append(wire.topic, wire.key, wire.headers, wire.payload);
      return { id: wire.id, topic: wire.topic, partition, offset: String(offset) };
    };
    return {
      send: async (message) => write(message as OutgoingMessage<unknown>),
      sendBatch: async (messages) => {
        const list = messages as readonly OutgoingMessage<unknown>[];
        for (const m of list) encodeMessage(m, MAX_MESSAGE_BYTES); // all valid before any is stored
        return list.map(write);
      },
      sendOneWay: (message) => {
        try {
          write(message as OutgoingMessage<unknown>);
        } catch (error) {
          reportOneWay(error, message as OutgoingMessage<unknown>);
        }
      },
      close: async () => {},
    };
  }

  subscribe<T>(options: SubscribeOptions<T>, handler: Handler<T> | BatchHandler<T>): Promise<Subscription>;
  async subscribe<T>(
    options: SubscribeOptions<T>,
    handler: Handler<T> | BatchHandler<T>,
  ): Promise<Subscription> {
    this.assertOpen();
    const { options: resolved, handler: checked } = resolveSubscription(options, handler);
    const topic = this.log.topic(resolved.topic);
    const key = `${resolved.topic}\u0000${resolved.group}`;
    let group = this.log.groups.get(key);
    if (group === undefined) {
      group = new Group(topic, resolved.startFrom, resolved.mode === 'broadcasting');
      this.log.groups.set(key, group);
    }
    const peer = group.members[0];
    const tags = (o: ResolvedSubscribeOptions) => [...(o.tags ?? [])].sort().join(',');
    if (peer !== undefined && tags(peer.options) !== tags(resolved))
      throw new ConfigError(
        'subscribe.tags',
        `group '${resolved.group}' has running members with other tags`,
      );
    const joined = group;
    const transport = new ToyTransport(this.log, joined, resolved, () => {
      if (joined.ephemeral && joined.members.length === 0) this.log.groups.delete(key);
    });
    return this.subscriptions.start(transport, { subscription: resolved, handler: checked });
  }

  consume<T>(options: SubscribeOptions<T>): MessageStream<T> {
    return pull((o, h) => this.subscribe(o, h), options);
  }

  async ensureTopic(topic: string, options?: { partitions?: number }): Promise<void> {
    this.assertOpen();
    const resolved = resolveEnsureTopic(topic, options);
    this.log.topic(resolved.topic, resolved.partitions ?? 1);
  }

  async backlog(topic: string, group: string): Promise<Backlog> {
    const name = userTopicName(topic, 'backlog.topic');
    const g = this.log.groups.get(`${name}\u0000${groupName(group, 'backlog.group')}`);
    const partitions = (this.log.topics.get(name)?.partitions ?? []).map((records, partition) => {
      if (g === undefined) return { partition, backlog: records.length, end: String(records.length) };
      const committed = g.position(partition);
      return {
        partition,
        backlog: records.length - committed,
        committed: String(committed),
        end: String(records.length),
      };
    });
    return { topic, group, total: partitions.reduce((sum, p) => sum + p.backlog, 0), partitions };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.subscriptions.closeAll();
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('toy broker connection is closed');
  }
}

/** `toy://name`: register with `registerAdapter('toy:', createToyBroker)`. */
export const createToyBroker: AdapterFactory = async (url, _options, context) => {
  const name = url.hostname || 'default';
  let log = logs.get(name);
  if (log === undefined) {
    log = new Log();
    logs.set(name, log);
  }
  return new ToyBroker(log, context ?? defaultAdapterContext());
};

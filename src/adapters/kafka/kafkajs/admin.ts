/** The kafkajs admin behind `AdminClient`. */
import type { Kafka } from 'kafkajs';
import { ClosedError, isMqError, TimeoutError } from '../../../core/errors.js';
import { type Logger, safeLog } from '../../../core/logger.js';
import { settlesWithin, sleep } from '../../../core/timers.js';
import type { AdminClient, KafkaClientConfig, PartitionOffsets } from '../client.js';
import { announcedTags, assignedPartitions } from './assigner.js';
import { connectWaitMs, disconnectAfter } from './connection.js';
import {
  hasConnectionCause,
  isUnreachable,
  type KafkajsErrorShape,
  TRANSIENT_METADATA_ERRORS,
  toMqError,
} from './errors.js';

/** The part of kafkajs's (2.x) internal cluster used to ask one broker at a time. */
interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  refreshMetadata(): Promise<void>;
  getNodeIds(): string[];
  findBroker(broker: { nodeId: string }): Promise<{
    metadata(topics: string[]): Promise<{
      topicMetadata: { topic: string; partitionMetadata: { partitionId: number; leader: number }[] }[];
    }>;
  }>;
}

/**
 * A cluster of kafkajs's own making, or undefined if this kafkajs has no such factory: its
 * public admin sends each metadata request to a broker it picks at random, and the question
 * here is what every broker answers.
 */
function internalCluster(kafka: Kafka): InternalCluster | undefined {
  const symbol = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === 'private:Kafka:createCluster',
  );
  const create = symbol === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[symbol];
  if (typeof create !== 'function') return undefined;
  const cluster = create({ metadataMaxAge: 0, allowAutoTopicCreation: false }) as Partial<InternalCluster>;
  const complete = ['connect', 'disconnect', 'refreshMetadata', 'getNodeIds', 'findBroker'].every(
    (m) => typeof (cluster as Record<string, unknown>)[m] === 'function',
  );
  return complete ? (cluster as InternalCluster) : undefined;
}

/** @internal Exported for tests only. */
export class KafkajsAdmin implements AdminClient {
  private readonly admin;
  private connected: Promise<void> | undefined;
  private brokers: number | undefined;
  /** A kafkajs cluster of its own for requests to one broker at a time, created on first use. */
  private perBroker: Promise<InternalCluster | undefined> | undefined;
  private cluster: InternalCluster | undefined;
  /** Aborted by `closing` (and `close`): waits for topics and group states end at once. */
  private readonly ending = new AbortController();
  /** Aborted by `close`: every call refuses with `ClosedError` from then on. */
  private readonly shut = new AbortController();
  /** Rejects with `ClosedError` once closed; raced against a connect in progress. */
  private readonly whenShut: Promise<never>;
  /** Calls in flight, which `close` waits for (bounded) before disconnecting. */
  private readonly running = new Set<Promise<unknown>>();
  private closed: Promise<void> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: KafkaClientConfig,
    private readonly logger: Logger,
  ) {
    this.admin = kafka.admin();
    this.whenShut = new Promise<never>((_, reject) => {
      this.shut.signal.addEventListener('abort', () => reject(closedError()), { once: true });
    });
    this.whenShut.catch(() => {});
  }

  private get requestTimeoutMs(): number {
    return this.config.requestTimeoutMs;
  }

  /** Runs `work` as a call `close` waits for; refuses once closed. */
  private track<T>(work: () => Promise<T>): Promise<T> {
    const running = this.shut.signal.aborted ? Promise.reject(closedError()) : work();
    this.running.add(running);
    const done = () => this.running.delete(running);
    running.then(done, done);
    return running;
  }

  private async ready(): Promise<ReturnType<Kafka['admin']>> {
    if (this.shut.signal.aborted) throw closedError();
    this.connected ??= this.admin.connect().catch((error: unknown) => {
      this.connected = undefined;
      throw toMqError(error, 'admin connection');
    });
    // Closed while connecting: refused at once; `close` disconnects once the connect settled.
    await Promise.race([this.connected, this.whenShut]);
    return this.admin;
  }

  /**
   * Runs an admin request, trying again a few times on retriable protocol errors that kafkajs
   * gives up on at once (NOT_LEADER_FOR_PARTITION from a topic created a moment ago, ...).
   */
  private call<T>(context: string, action: (admin: ReturnType<Kafka['admin']>) => Promise<T>): Promise<T> {
    return this.track(async () => {
      const admin = await this.ready();
      for (let attempt = 1; ; attempt++) {
        try {
          return await action(admin);
        } catch (error) {
          const e = error as KafkajsErrorShape;
          if (attempt >= 6 || e.name !== 'KafkaJSProtocolError' || e.retriable !== true) {
            throw toMqError(error, context);
          }
          if (!(await sleep(50 * 2 ** attempt, this.shut.signal))) throw closedError();
        }
      }
    });
  }

  async brokerCount(): Promise<number> {
    this.brokers ??= await this.call(
      'describe cluster',
      async (a) => (await a.describeCluster()).brokers.length,
    );
    return this.brokers;
  }

  async partitionCount(topic: string): Promise<number | undefined> {
    return this.call(`metadata of ${topic}`, async (a) => {
      try {
        const { topics } = await a.fetchTopicMetadata({ topics: [topic] });
        return topics[0]?.partitions.length;
      } catch (error) {
        if ((error as KafkajsErrorShape).type === 'UNKNOWN_TOPIC_OR_PARTITION') return undefined;
        throw error;
      }
    });
  }

  async createTopic(
    topic: string,
    options: { partitions: number; replicationFactor: number; config: Readonly<Record<string, string>> },
  ): Promise<boolean> {
    const created = await this.call(`create topic ${topic}`, (a) =>
      a.createTopics({
        // kafkajs's own wait gives up on UNKNOWN_TOPIC_OR_PARTITION, which KRaft brokers answer
        // until the new topic reached their metadata cache.
        waitForLeaders: false,
        topics: [
          {
            topic,
            numPartitions: options.partitions,
            replicationFactor: options.replicationFactor,
            configEntries: Object.entries(options.config).map(([name, value]) => ({ name, value })),
          },
        ],
      }),
    );
    await this.waitForTopic(topic, options.partitions, `create topic ${topic}`);
    return created;
  }

  /**
   * Until every broker that answers shows at least `count` partitions of `topic`, each with a
   * leader, and they all name the same leaders: a KRaft broker learns of a new topic from the
   * metadata log a moment after the controller, and a consumer or producer whose metadata
   * request reaches it meanwhile fails with UNKNOWN_TOPIC_OR_PARTITION. A broker that cannot
   * be reached (refused, timed out) is skipped, logged at debug; at least one must answer.
   * Bounded by `requestTimeoutMs` (a `TimeoutError` then); ends with `ClosedError` once the
   * connection is closing.
   */
  waitForTopic(topic: string, count: number, context = `metadata of ${topic}`): Promise<void> {
    return this.track(async () => {
      const deadline = Date.now() + this.requestTimeoutMs;
      for (let wait = 25; ; wait = Math.min(wait * 2, 500)) {
        if (this.ending.signal.aborted) throw closingError(context);
        let missing: string | undefined;
        try {
          missing = await this.unservedBy(topic, count);
        } catch (error) {
          if (isMqError(error)) throw error;
          if (
            !TRANSIENT_METADATA_ERRORS.has((error as KafkajsErrorShape).type ?? '') &&
            !hasConnectionCause(error)
          )
            throw toMqError(error, context);
          missing = `${(error as Error).message}`;
        }
        if (missing === undefined) return;
        if (Date.now() + wait > deadline) {
          throw new TimeoutError(`${context}: ${missing} after ${this.requestTimeoutMs} ms`);
        }
        if (!(await sleep(wait, this.ending.signal))) throw closingError(context);
      }
    });
  }

  /** What the brokers that answer do not serve yet of `topic`, or undefined when they all serve it alike. */
  private async unservedBy(topic: string, count: number): Promise<string | undefined> {
    const shows = (partitions: readonly { leader: number }[]): boolean =>
      partitions.length >= count && partitions.every((p) => p.leader >= 0);
    this.perBroker ??= this.ready().then(async () => {
      const cluster = internalCluster(this.kafka);
      this.cluster = cluster;
      await cluster?.connect();
      return cluster;
    });
    const cluster = await Promise.race([this.perBroker, this.whenShut]).catch((error: unknown) => {
      if (!this.shut.signal.aborted) this.perBroker = undefined;
      throw error;
    });
    if (this.ending.signal.aborted) throw closingError(`metadata of ${topic}`);
    if (cluster === undefined) {
      // Another kafkajs than the one this was written for: ask whichever broker kafkajs picks.
      const { topics } = await this.admin.fetchTopicMetadata({ topics: [topic] });
      return shows(topics[0]?.partitions ?? []) ? undefined : `${topic} has no leaders yet`;
    }
    await cluster.refreshMetadata(); // the current broker list
    if (this.ending.signal.aborted) throw closingError(`metadata of ${topic}`);
    const answers = await Promise.all(
      cluster.getNodeIds().map(async (nodeId) => {
        try {
          const broker = await cluster.findBroker({ nodeId });
          const metadata = await broker.metadata([topic]);
          return {
            nodeId,
            partitions: metadata.topicMetadata.find((t) => t.topic === topic)?.partitionMetadata ?? [],
          };
        } catch (error) {
          if (!isUnreachable(error)) throw error;
          safeLog(
            this.logger,
            'debug',
            { broker: 'kafka', nodeId, topic },
            `kafka broker ${nodeId} not reached for the metadata of ${topic}, skipped: ${(error as Error).message}`,
          );
          return undefined;
        }
      }),
    );
    let agreed: string | undefined;
    let answered = 0;
    for (const answer of answers) {
      if (answer === undefined) continue;
      answered++;
      const { nodeId, partitions } = answer;
      if (!shows(partitions)) {
        return `broker ${nodeId} shows ${partitions.length} of ${count} partitions of ${topic} with leaders`;
      }
      const leaders = partitions
        .map((p) => `${p.partitionId}:${p.leader}`)
        .sort()
        .join(',');
      if (agreed !== undefined && leaders !== agreed) return `brokers disagree on the leaders of ${topic}`;
      agreed = leaders;
    }
    return answered === 0 ? `no broker answered for the metadata of ${topic}` : undefined;
  }

  async createPartitions(topic: string, count: number): Promise<void> {
    await this.call(`add partitions to ${topic}`, async (a) => {
      try {
        await a.createPartitions({ topicPartitions: [{ topic, count }] });
      } catch (error) {
        // The topic has `count` or more already (raised by someone else, or metadata that lagged).
        if ((error as KafkajsErrorShape).type !== 'INVALID_PARTITIONS') throw error;
      }
    });
    await this.waitForTopic(topic, count, `add partitions to ${topic}`);
  }

  async topicOffsets(topic: string): Promise<PartitionOffsets[]> {
    const offsets = await this.call(`offsets of ${topic}`, (a) => a.fetchTopicOffsets(topic));
    return offsets.map((o) => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) }));
  }

  async committedOffsets(group: string, topic: string): Promise<Map<number, number>> {
    const result = await this.call(`committed offsets of ${group}`, (a) =>
      a.fetchOffsets({ groupId: group, topics: [topic] }),
    );
    const out = new Map<number, number>();
    for (const p of result[0]?.partitions ?? []) {
      const offset = Number(p.offset);
      if (offset >= 0) out.set(p.partition, offset);
    }
    return out;
  }

  async offsetsForTimestamp(topic: string, timestamp: number): Promise<Map<number, number>> {
    const offsets = await this.call(`offsets of ${topic} by time`, (a) =>
      a.fetchTopicOffsetsByTimestamp(topic, timestamp),
    );
    return new Map(offsets.map((o) => [o.partition, Number(o.offset)]));
  }

  async memberTags(group: string, topic: string): Promise<string[]> {
    // Kafka returns member metadata only for a Stable group: wait out a rebalance in progress.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const described = await this.call(`describe group ${group}`, (a) => a.describeGroups([group]));
      const found = described.groups[0];
      const settling = found?.state === 'PreparingRebalance' || found?.state === 'CompletingRebalance';
      if (settling && Date.now() < deadline) {
        if (!(await sleep(200, this.ending.signal))) throw closingError(`describe group ${group}`);
        continue;
      }
      const tags: string[] = [];
      for (const member of found?.members ?? []) {
        const announced = announcedTags(member.memberMetadata, topic);
        if (announced !== undefined) tags.push(announced);
      }
      return tags;
    }
  }

  async partitionConsumers(group: string, topic: string): Promise<Map<number, number> | undefined> {
    const described = await this.call(`describe group ${group}`, (a) => a.describeGroups([group]));
    return groupConsumers(described.groups[0], topic);
  }

  async deleteGroup(group: string): Promise<void> {
    await this.call(`delete group ${group}`, async (a) => {
      try {
        await a.deleteGroups([group]);
      } catch (error) {
        const groups = (error as { groups?: { errorCode?: number; error?: { type?: string } }[] }).groups;
        if (groups?.every((g) => g.error?.type === 'GROUP_ID_NOT_FOUND')) return;
        throw error;
      }
    });
  }

  /** See `KafkaClient.closing`. */
  closing(): void {
    this.ending.abort();
  }

  /** See `KafkaClient.close`. */
  close(): Promise<void> {
    this.closing();
    this.shut.abort();
    this.closed ??= (async () => {
      // Waits end at once; requests in flight are bounded by requestTimeoutMs.
      await settlesWithin(Promise.allSettled([...this.running]), this.requestTimeoutMs);
      const connecting = this.connected;
      if (connecting === undefined) return;
      const perBroker = this.perBroker;
      await disconnectAfter(
        Promise.allSettled([connecting, perBroker]),
        connectWaitMs(this.config),
        async () => {
          await Promise.all(
            [this.admin.disconnect(), this.cluster?.disconnect()].map((p) => p?.catch(() => {})),
          );
        },
      );
    })();
    return this.closed;
  }
}

/**
 * Members assigned each partition of `topic`, from a described group: none for a group with no
 * members (`Empty`, `Dead`, or not found); undefined (unknown) while it rebalances
 * (`PreparingRebalance`, `CompletingRebalance`) or in a state this code does not know, where
 * the assignments are stale or absent and a 0 would read as "nobody consumes".
 */
export function groupConsumers(
  group: { state?: string; members?: readonly { memberAssignment: Buffer }[] } | undefined,
  topic: string,
): Map<number, number> | undefined {
  const out = new Map<number, number>();
  if (group === undefined || group.state === 'Empty' || group.state === 'Dead') return out;
  if (group.state !== 'Stable') return undefined;
  for (const member of group.members ?? []) {
    for (const partition of assignedPartitions(member.memberAssignment, topic)) {
      out.set(partition, (out.get(partition) ?? 0) + 1);
    }
  }
  return out;
}

function closedError(): ClosedError {
  return new ClosedError('kafka admin connection is closed');
}

function closingError(context: string): ClosedError {
  return new ClosedError(`${context}: the kafka broker connection is closing`);
}

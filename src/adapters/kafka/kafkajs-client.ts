import kafkajs, {
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type Kafka,
  type KafkaConfig,
  type KafkaMessage,
  type Message,
  type PartitionAssigner,
  type Producer,
  type RecordMetadata,
} from 'kafkajs';
import {
  ClosedError,
  ConfigError,
  ConnectionError,
  isMqError,
  type MqError,
  PublishError,
  TimeoutError,
} from '../../core/errors.js';
import { type Logger, safeLog } from '../../core/logger.js';
import type { Headers } from '../../core/message.js';
import { MAX_TIMER_MS } from '../../core/options.js';
import { scrubError, scrubText } from '../../core/redact.js';
import { settlesWithin, sleep, withinTime } from '../../core/timers.js';
import {
  type AdminClient,
  CONNECT_ATTEMPTS,
  type Compression,
  type ConsumerClient,
  type ConsumerConfig,
  type ConsumerListener,
  type FetchedRecord,
  type KafkaAcks,
  type KafkaClient,
  type KafkaClientConfig,
  type OutgoingRecord,
  type PartitionOffsets,
  type ProducerClient,
  type RecordPosition,
  type TopicPartition,
} from './client.js';

// kafkajs is CommonJS; Node detects only some of its exports as named ESM exports.
const { AssignerProtocol, CompressionCodecs, CompressionTypes, logLevel, PartitionAssigners, Partitioners } =
  kafkajs;

/**
 * The kafkajs implementation of the client seam: the only file of mqkit that imports kafkajs.
 * kafkajs's own log lines go to `logger` (see {@link kafkaConfig}).
 */
export function createKafkajsClient(config: KafkaClientConfig, logger: Logger): KafkaClient {
  const kafka = new kafkajs.Kafka(kafkaConfig(config, logger));
  const admin = new KafkajsAdmin(kafka, config, logger);
  const minimums: PartitionMinimums = new Map();
  return {
    admin,
    connect: () => reachCluster(config, logger),
    producer: (options) => new KafkajsProducer(kafka, config, options.idempotent, minimums),
    // A Kafka instance of its own per consumer: kafkajs shares committed-offset bookkeeping
    // between the consumers of one instance by group id, and a rejoin of one clears the
    // other's, which crashes it when several subscriptions use the same group.
    consumer: (consumerConfig) =>
      new KafkajsConsumer(new kafkajs.Kafka(kafkaConfig(config, logger)), consumerConfig, config),
    partitionsAdded: (topic, count) => {
      minimums.set(topic, { count, until: Date.now() + PARTITIONS_ADDED_GRACE_MS });
    },
    closing: () => admin.closing(),
    close: () => admin.close(),
  };
}

/**
 * `KafkaClient.connect`: one admin connection of its own, with kafkajs's retries cut to
 * `CONNECT_ATTEMPTS` (about 100 ms and 200 ms apart) and every handshake request bounded by
 * `authenticationTimeoutMs` (kafkajs waits at least `requestTimeout` for each, API versions
 * included, and retries five times: minutes against a broker that never answers). kafkajs
 * has settled for good when its retrier rejects, so disconnecting then leaves nothing behind.
 */
async function reachCluster(config: KafkaClientConfig, logger: Logger): Promise<void> {
  const probe = new kafkajs.Kafka({
    ...kafkaConfig(config, logger),
    requestTimeout: config.authenticationTimeoutMs,
    retry: { retries: CONNECT_ATTEMPTS - 1, initialRetryTime: 100, maxRetryTime: 1000 },
  }).admin();
  try {
    await probe.connect();
  } catch (error) {
    const refused = someCause(error, (e) => e.name === 'KafkaJSSASLAuthenticationError');
    const untrusted = isCertificateError(error);
    const e = error as KafkajsErrorShape;
    const secrets = config.sasl === undefined ? [] : [config.sasl.password];
    throw new ConnectionError(
      scrubText(
        `cannot connect to the Kafka cluster at ${config.brokers.join(',')}: ${e.message ?? String(error)}${
          untrusted ? " (TLS: the broker's certificate is not trusted)" : ''
        }`,
        secrets,
      ),
      { cause: scrubError(error, secrets), retriable: !refused && !untrusted },
    );
  } finally {
    await probe.disconnect().catch(() => {});
  }
}

/** Refuses a compression codec kafkajs has no implementation registered for. */
export function checkCompression(compression: Compression, field: string): void {
  if (compression === 'none' || compression === 'gzip') return;
  try {
    (CompressionCodecs as Record<number, () => unknown>)[COMPRESSION[compression]]?.();
  } catch (error) {
    throw new ConfigError(
      field,
      `kafkajs has no ${compression} codec registered; use 'gzip' (built in) or register one before connecting, e.g. CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')`,
      { cause: error },
    );
  }
}

const COMPRESSION: Record<Compression, kafkajs.CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

const LOG_LEVELS: Record<KafkaClientConfig['logLevel'], kafkajs.logLevel> = {
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
};

/**
 * kafkajs's configuration. Its log lines (at `logLevel` and above) go to `logger` at `debug`,
 * one line each with kafkajs's fields, without the stack (kept at level 'debug'), and with the
 * SASL password, should one ever appear, masked: what fails for good is thrown to the caller
 * or reported by the adapter at `warn`, so kafkajs's retries are chatter.
 */
function kafkaConfig(config: KafkaClientConfig, logger: Logger): KafkaConfig {
  const secrets = config.sasl === undefined ? [] : [config.sasl.password];
  const mask = (text: string): string => scrubText(text, secrets);
  return {
    clientId: config.clientId,
    brokers: config.brokers,
    ssl: config.ssl,
    sasl: config.sasl as KafkaConfig['sasl'],
    connectionTimeout: config.connectionTimeoutMs,
    authenticationTimeout: config.authenticationTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    logLevel: LOG_LEVELS[config.logLevel],
    logCreator:
      () =>
      ({ namespace, label, log }) => {
        const { message, timestamp: _timestamp, logger: _logger, stack, ...extra } = log;
        if (config.logLevel === 'debug' && stack !== undefined) extra.stack = stack;
        let fields: Record<string, unknown> = extra;
        if (secrets.some((secret) => secret !== '')) {
          try {
            fields = JSON.parse(mask(JSON.stringify(extra)));
          } catch {
            fields = {};
          }
        }
        safeLog(
          logger,
          'debug',
          { broker: 'kafka', kafkajs: { namespace, level: label, ...fields } },
          mask(`kafkajs ${label} [${namespace}] ${String(message)}`),
        );
      },
  };
}

const CONNECTION_ERRORS = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
]);
const TIMEOUT_ERRORS = new Set([
  'KafkaJSRequestTimeoutError',
  'KafkaJSTimeout',
  'KafkaJSLockTimeout',
  'KafkaJSNumberOfRetriesExceeded',
]);
/** Protocol errors about the records themselves: sending them again cannot succeed. */
const BAD_RECORD_ERRORS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED',
]);

interface KafkajsErrorShape {
  name?: string;
  message?: string;
  type?: string;
  code?: unknown;
  retriable?: boolean;
  cause?: unknown;
}

/**
 * Node's codes for a TLS peer certificate that does not verify (self-signed, unknown issuer,
 * expired, wrong host name): trying again cannot help, the configuration must change.
 */
const CERTIFICATE_ERROR =
  /^(CERT_|SELF_SIGNED|DEPTH_ZERO_SELF_SIGNED|UNABLE_TO_|HOSTNAME_MISMATCH|ERR_TLS_CERT_ALTNAME_INVALID)/;

/** True when the error, or one of its causes, is a TLS certificate verification failure. */
const isCertificateError = (error: unknown): boolean =>
  someCause(error, (e) => typeof e.code === 'string' && CERTIFICATE_ERROR.test(e.code));

/** True when the error, or one of its `cause`s (kafkajs wraps errors it gives up on), matches. */
function someCause(error: unknown, matches: (e: KafkajsErrorShape) => boolean): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    if (matches(e as KafkajsErrorShape)) return true;
    e = (e as KafkajsErrorShape).cause;
  }
  return false;
}

const producerStateLost = (error: unknown): boolean =>
  someCause(error, (e) => PRODUCER_STATE_ERRORS.has(e.type ?? ''));

const isTransientMetadataError = (error: unknown): boolean =>
  someCause(error, (e) => TRANSIENT_METADATA_ERRORS.has(e.type ?? ''));

const hasConnectionCause = (error: unknown): boolean =>
  someCause(error, (e) => CONNECTION_ERRORS.has(e.name ?? ''));

/**
 * Maps a kafkajs error to an `MqError`: timeouts and exhausted retries to `TimeoutError`,
 * connection trouble to `ConnectionError`, and the rest to `PublishError` (when sending) or
 * `ConnectionError`, keeping kafkajs's `retriable`.
 */
export function toMqError(error: unknown, context: string, publishing = false): MqError {
  if (isMqError(error)) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as KafkajsErrorShape;
  const name = e.name ?? '';
  const message = `${context}: ${e.message ?? String(error)}${e.type ? ` (${e.type})` : ''}`;
  if (TIMEOUT_ERRORS.has(name) || e.type === 'REQUEST_TIMED_OUT') {
    return new TimeoutError(message, { cause: error });
  }
  if (isCertificateError(error)) return new ConnectionError(message, { cause: error, retriable: false });
  // kafkajs's retrier wraps an error it gave up on as non-retriable (cause: the original); a
  // connection refused or reset is still worth retrying for the caller, later.
  if (hasConnectionCause(error)) return new ConnectionError(message, { cause: error });
  if (name === 'KafkaJSSASLAuthenticationError')
    return new ConnectionError(message, { cause: error, retriable: false });
  const retriable = e.type !== undefined && BAD_RECORD_ERRORS.has(e.type) ? false : e.retriable !== false;
  return publishing
    ? new PublishError(message, { cause: error, retriable })
    : new ConnectionError(message, { cause: error, retriable });
}

/** Metadata errors a broker answers for a topic it has not caught up with yet. */
const TRANSIENT_METADATA_ERRORS = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
]);

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

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function readHeaders(headers: IHeaders | undefined): Headers {
  const out: Headers = {};
  if (headers === undefined) return out;
  for (const name in headers) {
    let value = headers[name];
    if (Array.isArray(value)) value = value[value.length - 1];
    out[name] = value === undefined || value === null ? '' : value.toString();
  }
  return out;
}

function readRecord(message: KafkaMessage): FetchedRecord {
  return {
    offset: Number(message.offset),
    key: message.key === null || message.key === undefined ? undefined : message.key.toString(),
    value: message.value ?? EMPTY,
    headers: readHeaders(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/** Where the partitioner put a message (kafkajs ignores other fields), so `send` can report it. */
const PLACED = Symbol('mqkit.partition');
type PlacedMessage = Message & { [PLACED]?: number };

/** Partition counts topics are known to have (since `until`), whatever older metadata says. */
type PartitionMinimums = Map<string, { count: number; until: number }>;

/** kafkajs's error for missing metadata: its producer re-reads the metadata and tries again. */
const MetadataNotLoaded = kafkajs.KafkaJSMetadataNotLoaded as unknown as new (message: string) => Error;

/** How long after a partition increase metadata showing fewer partitions counts as stale. */
const PARTITIONS_ADDED_GRACE_MS = 60_000;

/**
 * kafkajs's Java-compatible DefaultPartitioner (murmur2 of the key, round-robin without one),
 * sticky per message: a retried request keeps each message on the partition it first chose.
 * Metadata showing fewer partitions than the topic is known to have (`partitionsAdded`) is
 * refused as not loaded, which makes kafkajs re-read it and try again.
 */
function placingPartitioner(minimums: PartitionMinimums) {
  const inner = Partitioners.DefaultPartitioner();
  return (args: Parameters<typeof inner>[0]): number => {
    const minimum = minimums.get(args.topic);
    if (minimum !== undefined && args.partitionMetadata.length < minimum.count) {
      if (Date.now() < minimum.until) {
        throw new MetadataNotLoaded(
          `metadata of ${args.topic} shows ${args.partitionMetadata.length} partitions, not ${minimum.count}`,
        );
      }
      minimums.delete(args.topic);
    }
    const message = args.message as PlacedMessage;
    const previous = message[PLACED];
    if (previous !== undefined && previous < args.partitionMetadata.length) return previous;
    const partition = inner(args);
    message[PLACED] = partition;
    return partition;
  };
}

const NO_USER_DATA = Buffer.alloc(0);

/**
 * Round-robin over the members subscribed to each topic. kafkajs's own round-robin assigner
 * deals every topic of the leader's subscription to all members, which breaks groups whose
 * members read different topics (one group name used for several topics, as mqkit allows).
 * Topics are dealt in name order, each starting one member further, to spread small topics.
 */
/** Member metadata user data: `{ mqkitTags: { <topic>: 'tag1,tag2' | '' } }` as JSON. */
function tagsUserData(tags: Readonly<Record<string, string>>): Buffer {
  return Buffer.from(JSON.stringify({ mqkitTags: tags }));
}

/** The tags a member announced for `topic`, or undefined for a member that announced none. */
export function announcedTags(metadata: Buffer, topic: string): string | undefined {
  try {
    const userData = AssignerProtocol.MemberMetadata.decode(metadata)?.userData;
    if (userData === undefined || userData.length === 0) return undefined;
    const tags: unknown = JSON.parse(userData.toString('utf8'))?.mqkitTags?.[topic];
    return typeof tags === 'string' ? tags : undefined;
  } catch {
    return undefined; // another client's metadata
  }
}

const subscriptionAssigner =
  (userData: Buffer): PartitionAssigner =>
  ({ cluster }) => ({
    name: 'MqkitRoundRobinAssigner',
    version: 0,
    async assign({ members }) {
      const readers = new Map<string, string[]>();
      for (const { memberId, memberMetadata } of members) {
        for (const topic of AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? []) {
          const list = readers.get(topic);
          if (list === undefined) readers.set(topic, [memberId]);
          else list.push(memberId);
        }
      }
      const topics = [...readers.keys()].sort();
      await cluster.addMultipleTargetTopics(topics);
      const assignment = new Map<string, Record<string, number[]>>();
      topics.forEach((topic, t) => {
        const memberIds = (readers.get(topic) as string[]).sort();
        for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
          const memberId = memberIds[(partitionId + t) % memberIds.length] as string;
          let own = assignment.get(memberId);
          if (own === undefined) {
            own = {};
            assignment.set(memberId, own);
          }
          const partitions = own[topic];
          if (partitions === undefined) own[topic] = [partitionId];
          else partitions.push(partitionId);
        }
      });
      return [...assignment].map(([memberId, own]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: own,
          userData: NO_USER_DATA,
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: 'MqkitRoundRobinAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData }),
      };
    },
  });

/**
 * Errors that mean the idempotent producer's sequence state no longer matches the broker's (a
 * broker lost it in a crash, say). kafkajs does not recover from them: the producer is replaced
 * by a new one, with a new producer id, and the failed send is retriable (it was not stored).
 */
const PRODUCER_STATE_ERRORS = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
]);

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
      return positions(records, messages, stored);
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

/**
 * How long closing waits for a connect in progress before disconnecting anyway: a broker gone
 * silent after the cluster was reached keeps kafkajs retrying for minutes.
 */
const connectWaitMs = (config: KafkaClientConfig): number =>
  Math.min(config.connectionTimeoutMs + config.authenticationTimeoutMs, MAX_TIMER_MS);

/**
 * Waits up to `ms` for `work` to settle, then runs `disconnect`; if `work` was still pending,
 * runs `disconnect` again once it settles, so that nothing it opened meanwhile stays open.
 */
async function disconnectAfter(work: Promise<unknown>, ms: number, disconnect: () => Promise<void>) {
  const settled = Promise.allSettled([work]);
  if (!(await settlesWithin(settled, ms))) void settled.then(disconnect).catch(() => {});
  await disconnect().catch(() => {});
}

/** Errors of one broker that cannot be reached (refused, timed out): skipped when asking each broker. */
const isUnreachable = (error: unknown): boolean =>
  hasConnectionCause(error) || someCause(error, (e) => TIMEOUT_ERRORS.has(e.name ?? ''));

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

function closedError(): ClosedError {
  return new ClosedError('kafka admin connection is closed');
}

function closingError(context: string): ClosedError {
  return new ClosedError(`${context}: the kafka broker connection is closing`);
}

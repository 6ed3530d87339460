import type { MqError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Headers } from '../../core/message.js';
import type { TlsOptions } from '../../core/tls.js';

/**
 * The seam between the adapter and a Kafka client library. Everything else in this folder talks
 * to Kafka through these interfaces only; `kafkajs/` implements them with kafkajs, and
 * another client (node-rdkafka, @confluentinc/kafka-javascript, ...) can replace it by
 * implementing them too. Implementations throw (and reject with) `MqError`s only.
 */
export interface KafkaClient {
  readonly admin: AdminClient;
  /**
   * Reaches the cluster once, on a connection of its own that is closed again, with a bounded
   * budget: the bootstrap brokers are tried {@link CONNECT_ATTEMPTS} times, each attempt bounded
   * by `connectionTimeoutMs` for TCP and `authenticationTimeoutMs` per handshake request.
   * Resolves once a broker answered the handshake (versions, SASL login) and a metadata request
   * (a SASL listener takes the handshake without a login and closes the connection at the next
   * request); rejects with `ConnectionError` (not retriable when the credentials were refused or
   * TLS verification failed). Leaves no socket or timer behind either way.
   */
  connect(): Promise<void>;
  /** An idempotent producer needs acks all (-1) on every send. */
  producer(options: { idempotent: boolean }): ProducerClient;
  consumer(config: ConsumerConfig): ConsumerClient;
  /**
   * Partitions were added to `topic`, which now has `count`: this client's producers re-read
   * its metadata before placing records there, so keys spread over the new count at once.
   */
  partitionsAdded(topic: string, count: number): void;
  /**
   * The connection is closing: admin waits in progress and new ones (`waitForTopic`, the wait of
   * `createTopic` and `createPartitions`, `memberTags`' wait for a rebalance) end at once with
   * `ClosedError`, so the owner's calls in flight settle; single admin requests still run.
   */
  closing(): void;
  /**
   * Closes the admin connection: calls `closing`, refuses every admin call from then on with
   * `ClosedError` (a call waiting for the admin connection too), waits for admin calls in
   * flight (at most `requestTimeoutMs`) and for a connect in progress (at most
   * `connectionTimeoutMs + authenticationTimeoutMs`), then disconnects; whatever was still
   * pending is disconnected again once it settles. Producers and consumers are closed by
   * their owners.
   */
  close(): Promise<void>;
}

/** Creates a client; the client library's own log lines go to `logger`. */
export type KafkaClientFactory = (config: KafkaClientConfig, logger: Logger) => KafkaClient;

/** Attempts of {@link KafkaClient.connect}: a refused or silent broker is tried this often in all. */
export const CONNECT_ATTEMPTS = 3;

export interface KafkaClientConfig {
  /** `host:port` bootstrap servers. */
  brokers: string[];
  clientId: string;
  /** TLS: off, on with Node's defaults, or on with these `tls.connect` options. */
  ssl: boolean | TlsOptions;
  sasl:
    | { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string }
    | undefined;
  /** Per TCP (and TLS) connection attempt. */
  connectionTimeoutMs: number;
  /** Per request of the handshake (API versions, SASL) when first reaching the cluster. */
  authenticationTimeoutMs: number;
  requestTimeoutMs: number;
  /** How often cached partition metadata is re-read (new partitions are seen after this). */
  metadataMaxAgeMs: number;
  logLevel: 'nothing' | 'error' | 'warn' | 'info' | 'debug';
}

/** Kafka's acks: -1 every in-sync replica, 1 the leader, 0 none. */
export type KafkaAcks = -1 | 1 | 0;

export type Compression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** A record to produce. Without a partition, keyed records go to murmur2(key) % partitions. */
export interface OutgoingRecord {
  topic: string;
  key: string | undefined;
  value: Uint8Array;
  headers: Headers;
}

/** Where a produced record was stored. `offset` is undefined with acks 0. */
export interface RecordPosition {
  partition: number;
  offset: number | undefined;
}

export interface ProducerClient {
  /**
   * Produces the records with one produce request per partition leader and resolves with each
   * record's position, in input order. Not atomic. Rejects with `PublishError`, `ConnectionError`
   * or `TimeoutError`; after a rejection some records may have been stored.
   */
  send(
    records: readonly OutgoingRecord[],
    options: { acks: KafkaAcks; compression: Compression; timeoutMs: number },
  ): Promise<RecordPosition[]>;
  disconnect(): Promise<void>;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface ConsumerConfig {
  groupId: string;
  /** `fromBeginning` applies to partitions the group has no committed offset for. */
  topics: readonly { topic: string; fromBeginning: boolean }[];
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  maxWaitTimeMs: number;
  maxBytesPerPartition: number;
  /** Batches (of different partitions) handed to `ConsumerListener.batch` at once. */
  concurrentBatches: number;
  /**
   * This member's tags per topic ('' for all), announced in the group protocol's member
   * metadata so that members joining later can compare (see `AdminClient.memberTags`).
   */
  tags?: Readonly<Record<string, string>>;
}

/** A record as fetched. Keys and header values are read as UTF-8; of repeated headers the last wins. */
export interface FetchedRecord {
  offset: number;
  /** `offset` in decimal, when the client has it as text already (kafkajs does): one string less per record. */
  offsetText?: string;
  key: string | undefined;
  value: Uint8Array;
  headers: Headers;
  /** The record's timestamp, ms since the epoch. */
  timestamp: number;
}

/** Records of one partition, in offset order. */
export interface FetchedBatch extends TopicPartition {
  records: readonly FetchedRecord[];
}

/** Callbacks of a running consumer. They must not throw. */
export interface ConsumerListener {
  /**
   * Takes records of a batch and returns the highest offset taken (undefined: none). The client
   * fetches from the next offset after it; untaken records are fetched again later. Returning
   * does not commit anything.
   */
  batch(batch: FetchedBatch): Promise<number | undefined> | number | undefined;
  /** A join completed: these are all the partitions this member owns now. Called before fetching. */
  assigned(partitions: readonly TopicPartition[]): void;
  /** The group started rebalancing: the current assignment is about to be revoked. */
  rebalancing(): void;
  /** The consumer failed and left the group; `restarting`: it rejoins by itself after a pause. */
  crashed(error: MqError, restarting: boolean): void;
}

export interface ConsumerClient {
  /**
   * Connects, joins the group and starts fetching. Resolves once the first join completed
   * (`assigned` was called) or failed (`crashed` was called). A failure the client recovers
   * from by itself (a broker that has not caught up with a new topic yet) is waited out, for
   * up to `requestTimeoutMs`, without calling `crashed`.
   */
  run(listener: ConsumerListener): Promise<void>;
  /** Stops fetching these partitions until resumed. Survives rebalances and restarts. */
  pause(partitions: readonly TopicPartition[]): void;
  resume(partitions: readonly TopicPartition[]): void;
  /** Fetches an assigned partition from `offset` next (called from `assigned`, before fetching). */
  seek(partition: TopicPartition & { offset: number }): void;
  /** Commits next-offsets-to-read for the group, as the current member. */
  commit(offsets: readonly (TopicPartition & { offset: number })[]): Promise<void>;
  /**
   * Stops fetching, leaves the group and disconnects; ends `run`'s wait for a first join at
   * once. Waits for a connect in progress at most `connectionTimeoutMs + authenticationTimeoutMs`.
   * Idempotent.
   */
  stop(): Promise<void>;
}

/** Offsets of one partition: `low` is the first retained, `high` the next to be written. */
export interface PartitionOffsets {
  partition: number;
  low: number;
  high: number;
}

export interface AdminClient {
  /** Number of brokers in the cluster. */
  brokerCount(): Promise<number>;
  /** Partition count of `topic`, or undefined when it does not exist. */
  partitionCount(topic: string): Promise<number | undefined>;
  /**
   * Creates a topic; resolves false when it already existed, else once every broker serves it
   * (see `waitForTopic`).
   */
  createTopic(
    topic: string,
    options: { partitions: number; replicationFactor: number; config: Readonly<Record<string, string>> },
  ): Promise<boolean>;
  /**
   * Raises the partition count to `count`, resolving once the metadata shows it; a topic that
   * has that many or more already is left as it is.
   */
  createPartitions(topic: string, count: number): Promise<void>;
  /**
   * Resolves once every broker of the cluster that answers serves `topic`'s metadata with at
   * least `count` partitions, each with a leader, all naming the same leaders (what
   * `createTopic` and `createPartitions` wait for before they resolve). A broker that cannot be
   * reached is skipped; at least one must answer. Rejects with `TimeoutError` after
   * `requestTimeoutMs`, with `ClosedError` once the connection is closing.
   */
  waitForTopic(topic: string, count: number): Promise<void>;
  topicOffsets(topic: string): Promise<PartitionOffsets[]>;
  /** Committed offsets of `group` on `topic`, by partition; partitions without one are absent. */
  committedOffsets(group: string, topic: string): Promise<Map<number, number>>;
  /** Per partition, the first offset whose timestamp is >= `timestamp` (the end offset if none). */
  offsetsForTimestamp(topic: string, timestamp: number): Promise<Map<number, number>>;
  /**
   * Tags on `topic` of each running mqkit member of `group`, as announced in its member
   * metadata ('' for all tags). Members of other clients announce nothing and are left out.
   * Waits (up to 15 s) for a rebalance in progress to settle: only then does Kafka tell.
   */
  memberTags(group: string, topic: string): Promise<string[]>;
  /**
   * Members of `group` assigned each partition of `topic` now (one describe-group request, no
   * wait): partitions nobody holds are absent, and so is every partition when the group has no
   * members; undefined (unknown) while the group rebalances.
   */
  partitionConsumers(group: string, topic: string): Promise<Map<number, number> | undefined>;
  /** Deletes a group without members; a missing group is not an error. */
  deleteGroup(group: string): Promise<void>;
}

import type { TopicSpec } from './codec.js';

/** String headers carried with a message. Names starting with `mq-` are reserved for mqkit. */
export type Headers = Record<string, string>;

/** A topic by name (JSON or bytes body) or a typed topic made with `defineTopic`. */
export type TopicRef<T = unknown> = string | TopicSpec<T>;

/** A message to send. */
export interface OutgoingMessage<T = unknown> {
  topic: TopicRef<T>;
  /**
   * The payload. Encoded with the topic's codec; without one, a `Uint8Array` passes through as
   * bytes and anything else is JSON.
   */
  body: T;
  /** Ordering and partitioning key: one key always lands on the same partition (murmur2, as Kafka). */
  key?: string;
  /** Second-level type within a topic (RocketMQ's tag), used by `subscribe({ tags })`. */
  tag?: string;
  headers?: Headers;
  /** Identity used for de-duplication. Default: a new UUIDv7. Keep it when you re-send. */
  id?: string;
  /** Deliver no earlier than this many milliseconds from now. Default 0. */
  delayMs?: number;
}

/** A message handed to a subscription's handler. */
export interface Delivery<T = unknown> {
  readonly topic: string;
  readonly body: T;
  readonly key: string | undefined;
  readonly tag: string | undefined;
  /** Application headers; mqkit's own `mq-*` headers are removed. */
  readonly headers: Headers;
  /**
   * The message's identity, never shared by two different messages. Where it came from is in
   * `idOrigin`: only a `'message'` or `'position'` id is the same on a redelivery.
   */
  readonly id: string;
  /** Where `id` came from; see {@link IdOrigin}. */
  readonly idOrigin: IdOrigin;
  /**
   * 1 on first delivery, then 2, 3, ... across retries. Broker redeliveries (after a crash or a
   * dropped connection) count on memory and Kafka, and on RabbitMQ quorum queues
   * (`x-delivery-count`); on RabbitMQ classic queues the broker only flags a redelivery, so the
   * first one counts and later ones do not.
   */
  readonly attempt: number;
  /** When the message was first produced (ms since the epoch). */
  readonly timestamp: number;
  /** Partition or partition queue number, where the broker has one. */
  readonly partition: number | undefined;
  /** Position in the partition, as a decimal string, where the broker has one. */
  readonly offset: string | undefined;
  /** Set on messages read from a dead-letter topic: why and where the message failed. */
  readonly deadLetter: DeadLetterInfo | undefined;
  /**
   * Aborted when mqkit gives the delivery up: the subscription is closing and its drain
   * timeout has passed; its partition moved to another member of the group (at once on Kafka,
   * after `closeTimeoutMs` on memory and RabbitMQ); or, on RabbitMQ, the channel it came on was
   * lost (its acknowledgement can no longer be sent). Stop work and throw; the message is not
   * acknowledged and will be delivered again.
   */
  readonly signal: AbortSignal;
}

/**
 * Where a delivery's `id` came from:
 * - `'message'`: set by the producer (mqkit's `mq-id`, the AMQP `messageId` property). It stays
 *   the same across retries, redeliveries and re-sends that keep it.
 * - `'position'`: the producer set none, so the id is the message's position in the broker,
 *   `<topic>-<partition>-<offset>` (Kafka, RabbitMQ stream topics). Stable across redeliveries
 *   of that record; a re-send by the producer is another record with another id.
 * - `'delivery'`: the producer set none and the broker gives no stable position (a message from
 *   another client on a RabbitMQ classic or quorum queue). A new UUIDv7, kept by mqkit's retry
 *   and dead-letter copies, but a redelivery by the broker gets another one: it cannot
 *   recognise a repeat, and never merges two messages.
 */
export type IdOrigin = 'message' | 'position' | 'delivery';

/** Why a message was dead-lettered, as recorded in its `mq-error-*` and `mq-original-*` headers. */
export interface DeadLetterInfo {
  /** An `MqErrorCode` (e.g. 'DECODE'), or 'HANDLER' for an error thrown by the handler. */
  errorCode: string;
  errorName: string;
  errorMessage: string;
  originalTopic: string;
  originalGroup: string;
  originalPartition: number | undefined;
  originalOffset: string | undefined;
  /** Deliveries made before giving up. */
  attempts: number;
  /** ISO 8601 time of the last failure. */
  failedAt: string;
}

/** What `send` resolves with once the broker acknowledged the message. */
export interface SendResult {
  id: string;
  topic: string;
  partition?: number;
  offset?: string;
}

/** Handler of a subscription. Resolving acknowledges the message; throwing applies the retry policy. */
export type Handler<T = unknown> = (delivery: Delivery<T>) => Promise<void> | void;

/**
 * What a batch handler may return: the deliveries that failed, each with its error. Those get
 * the retry policy; the others of the batch are acknowledged.
 */
export type BatchFailures<T = unknown> = ReadonlyMap<Delivery<T>, unknown>;

/**
 * Handler of a batch subscription (`subscribe({ ..., batch: {} }, handler)`): gets the
 * deliveries in stored order per partition. Resolving with nothing acknowledges them all;
 * throwing fails them all; returning `BatchFailures` fails only those. Each delivery has its own
 * outcome: a failed one is retried (its `attempt` rising) and dead-lettered on its own. With
 * order 'key' or 'partition', the deliveries after a failed one with its key (or partition) are
 * handed over again with it, whatever their own result, so a key is never handled out of order;
 * only the failed one's attempt counts.
 */
export type BatchHandler<T = unknown> = (
  deliveries: readonly Delivery<T>[],
) => Promise<BatchFailures<T> | void> | BatchFailures<T> | void;

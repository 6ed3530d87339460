import type { Handler, OutgoingMessage, SendResult } from './message.js';
import type { ProducerOptions, SubscribeOptions } from './options.js';

/**
 * One message of a `sendBatch`: its body type comes from its topic alone (a typed topic's `T`,
 * else `unknown`), so a body that does not fit the topic is a compile error rather than
 * widening `T` to accept it.
 */
export type BatchMessage<T> = Omit<OutgoingMessage<T>, 'body'> & { body: NoInference<T> };

/** `T`, in a position TypeScript does not infer from (TypeScript 5.4's `NoInfer`, for older compilers too). */
type NoInference<T> = [T][T extends unknown ? 0 : never];

/** How many broker acknowledgements `send` waits for. */
export type Acks = 'all' | 'leader' | 'none';

/**
 * What a broker can do. The conformance suite reads these flags; an operation a broker cannot
 * do is refused with `UnsupportedError`, never silently ignored.
 */
export interface Capabilities {
  /** `startFrom: { timestamp }` and `'earliest'` re-read retained messages. */
  readonly replay: boolean;
  /** Tags are filtered in the broker (not shipped to the client and dropped there). */
  readonly brokerSideTagFilter: boolean;
  /** Topics have numbered partitions and `ensureTopic({ partitions })` means something. */
  readonly partitions: boolean;
  /** Delayed delivery without extra topics or queues. */
  readonly nativeDelay: boolean;
  /** Messages survive a broker restart once `send` resolved with acks 'all'. */
  readonly durable: boolean;
  /** The acks levels `send` honours. */
  readonly acks: readonly Acks[];
  /** Largest body the adapter accepts by default, in bytes. */
  readonly maxMessageBytes: number;
}

/** Backlog of one group on one topic. */
export interface Backlog {
  topic: string;
  group: string;
  /** Messages not yet acknowledged by the group, summed over partitions (queues). */
  total: number;
  /** One entry per partition (Kafka, memory) or partition queue (RabbitMQ). */
  partitions: {
    partition: number;
    backlog: number;
    committed?: string;
    end?: string;
    /** Of `backlog`, deliveries consumers hold unacknowledged, where the broker reports them separately. */
    inFlight?: number;
  }[];
}

/**
 * Sends messages. Safe to share between concurrent callers.
 *
 * Ordering: two `send` calls with the same key, the second started after the first resolved,
 * are stored in that order. Calls in flight at the same time have no order between them,
 * except inside one `sendBatch`, which keeps the array's order per key.
 */
export interface Producer {
  /**
   * Resolves once the broker acknowledged the message per `acks` ('none' resolves once written
   * to the socket). Rejects, before anything is sent, with `ConfigError` (a malformed message)
   * or `DecodeError` (a body its codec or schema refuses); then with `PublishError` (see
   * `retriable`; too large or unroutable are not retriable), `TimeoutError` or `ClosedError`.
   * A rejection does not prove the message was not stored: retrying may duplicate, which the
   * message id lets consumers absorb.
   */
  send<T>(message: OutgoingMessage<T>): Promise<SendResult>;
  /**
   * Sends many messages with one round of acknowledgements where the broker allows.
   * Not atomic: on rejection some messages may have been stored. Each message's body is
   * type-checked against its own topic: a typed topic (`defineTopic<T>`) takes a `T`.
   */
  sendBatch<T extends readonly unknown[]>(
    messages: {
      readonly [K in keyof T]: BatchMessage<T[K]>;
    },
  ): Promise<SendResult[]>;
  /** Fire and forget (acks none), for logs and metrics. Errors are reported to `onError` only. */
  sendOneWay<T>(message: OutgoingMessage<T>): void;
  /** Waits for sends in flight, then releases the producer. */
  close(): Promise<void>;
}

/** A running subscription. */
export interface Subscription {
  readonly topic: string;
  readonly group: string;
  /**
   * Stops taking new deliveries, waits up to `timeoutMs` (default: the subscription's
   * `closeTimeoutMs`) for handlers in flight, commits what finished, then leaves the group.
   * Handlers still running when the timeout passes see their `signal` aborted; their messages
   * are not acknowledged and will be delivered again.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/** Topic administration and monitoring. */
export interface Admin {
  /**
   * Creates the topic if missing; raises its partition count if lower (never lowers it).
   * Idempotent. Brokers without partitions accept `partitions` as the number of partition queues.
   */
  ensureTopic(topic: string, options?: { partitions?: number }): Promise<void>;
  /** Unacknowledged messages of `group` on `topic`, per partition and in total. */
  backlog(topic: string, group: string): Promise<Backlog>;
}

/**
 * A connection to one broker. Get one with `connect(url)`.
 *
 * Delivery is at-least-once on every broker: a handler may see a message more than once
 * (after a crash, a rebalance, a reconnect); use the message id to de-duplicate.
 */
export interface Broker extends Admin {
  /** Adapter name: 'memory', 'kafka', 'rabbitmq' or a third party's. */
  readonly kind: string;
  readonly capabilities: Capabilities;
  /** A producer. Producers are cheap on memory; on network brokers reuse one per process. */
  producer(options?: ProducerOptions): Producer;
  /**
   * Starts consuming. Resolves once the subscription is ready to receive: a message sent after
   * the promise resolved is delivered to it (or to a member of its group).
   *
   * The handler resolving acknowledges (commits) the message; throwing retries it per
   * `retry`, then sends it to the dead-letter topic with the error in its headers. See
   * `SubscribeOptions` for ordering and concurrency.
   */
  subscribe<T = unknown>(options: SubscribeOptions<T>, handler: Handler<T>): Promise<Subscription>;
  /** Closes subscriptions (as `Subscription.close`), then producers, then the connection. */
  close(): Promise<void>;
}

import type { EventSource } from './events.js';
import type { BatchHandler, Delivery, Handler, OutgoingMessage, SendResult } from './message.js';
import type { BatchSubscribeOptions, ProducerOptions, SubscribeOptions } from './options.js';

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
 * What a broker can do. What it cannot do is refused with `UnsupportedError` or works as the
 * flag's false case says, never silently ignored.
 *
 * Each flag switches tests of the conformance suite (`mqkit/testing/conformance`), as feature
 * flags do in Watermill's test suite: a test named `[flag]` runs where the flag is true and one
 * named `[!flag]` where it is false (`[acks:<level>]` / `[!acks:<level>]` per acks level), the
 * other is reported as skipped. Below, each flag says what those tests check.
 */
export interface Capabilities {
  /**
   * True: a group re-reads retained messages: `startFrom: { timestamp }` starts at the first
   * message stored at or after that time, and `'earliest'` at the oldest retained one, even if
   * other groups consumed it. False: `startFrom: { timestamp }` is refused with
   * `UnsupportedError`, and a new group, `'earliest'` or not, gets what is sent once it exists
   * (RabbitMQ adds what no group had taken yet). The flag describes topics with default
   * settings; an adapter may replay topics configured for it (RabbitMQ's stream topics).
   */
  readonly replay: boolean;
  /**
   * True: the broker keeps for a group only the messages of the tags it subscribed to, so the
   * group's backlog counts those alone. False: the group's partitions hold every message of the
   * topic, counted in its backlog until a member reads past them; a member skips the tags it did
   * not ask for (acknowledges them without running the handler). Either way a handler sees only
   * its tags.
   */
  readonly brokerSideTagFilter: boolean;
  /**
   * True: with order 'key', a message waiting to be retried holds up only the later messages of
   * its key; other keys of its partition go on. False: it may hold up the other keys of its
   * partition (queue) until it is through: messages of other keys already handed out go on,
   * later ones wait (RocketMQ 5's FIFO groups hand out a queue's next messages only once the
   * previous ones are acknowledged). Per-key order holds either way; more partitions narrow
   * what one retry can hold up.
   */
  readonly keyIsolation: boolean;
  /**
   * True: `ensureTopic(topic, { partitions: n })` gives the topic partitions numbered 0 to n-1,
   * native or emulated (RabbitMQ's partition queues, read by groups with order 'key' or
   * 'partition'): a key's messages keep to one, deliveries and `backlog` carry the number, and
   * a later `ensureTopic` raises the count, never lowers it.
   * False: a topic has one partition and `ensureTopic` refuses `partitions` above 1 with
   * `UnsupportedError`.
   */
  readonly partitions: boolean;
  /**
   * True: the broker holds a delayed message until it is due. False: the adapter passes it
   * through delay topics or queues of its own, a copy per hop (extra topics or queues, and the
   * right to create them; late by up to a hop's granularity). `delayMs` works either way and is
   * never early: the difference is cost and lateness, which no test can observe without timing
   * it. So the `[nativeDelay]` test checks a plain delay, and the `[!nativeDelay]` test a delay
   * that crosses several tiers, arriving as the message sent (id, key, tag, headers, send time).
   */
  readonly nativeDelay: boolean;
  /**
   * Messages survive a broker restart once `send` resolved with acks 'all'. A restart is out of
   * the conformance suite's reach, so this flag switches no test: the suite checks, on every
   * broker, the part it can see (such a message is in the backlog of a group with no member
   * running as soon as `send` resolved, and is delivered after its sender disconnected), naming
   * the test `[durable]` or `[!durable]`; the restarts are integration tests
   * (`rabbitmq-restart`, `kafka-restart`).
   */
  readonly durable: boolean;
  /** The acks levels `send` honours; `producer({ acks })` refuses the others with `UnsupportedError`. */
  readonly acks: readonly Acks[];
  /**
   * Largest body the adapter accepts by default, in bytes (the encoded body; headers do not
   * count). A body of this size is delivered; a larger one is refused, by `send` and by
   * `sendBatch` before any of the batch is sent, with a non-retriable `PublishError`.
   */
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
    /**
     * Consumers attached to this partition (queue), where the broker tells: RabbitMQ's consumer
     * count of the queue (with single active consumer, all registered ones, one of them active);
     * Kafka's group members assigned the partition (0 when the group has no member; absent
     * while it rebalances or when the group could not be described);
     * memory's owner (0 or 1). Absent where unknown.
     */
    consumers?: number;
    /**
     * Store time (ms since the epoch) of the oldest message of `backlog`, where the broker can
     * tell without consuming (memory). Absent where it cannot (Kafka, RabbitMQ) or the backlog
     * is empty; the backlog monitor then estimates the lag in seconds from its history.
     */
    oldestTimestamp?: number;
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
  /**
   * Starts no new handler until `resume`; handlers running now finish. Messages keep arriving up
   * to the prefetch, then the broker holds the rest. Partitions stay assigned (no rebalance).
   */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  /** Handlers (or batches) that may run at once; starts at the `concurrency` option. */
  readonly concurrency: number;
  /**
   * Changes `concurrency` while running (1 to `MAX_CONCURRENCY`, else `RangeError`). Per-key and
   * per-partition order hold at any value: more keys run in parallel, never one key twice.
   */
  setConcurrency(concurrency: number): void;
}

/**
 * Pull consumption: `for await (const delivery of broker.consume(options))`. The same group,
 * order, retry and dead-letter semantics as `subscribe`; the loop body is the handler.
 *
 * When a delivery counts as handled: when the loop asks for the next one (the body finished
 * without leaving the loop). To fail it, call `fail(delivery, error)` and go on: the retry
 * policy applies as if a handler had thrown. Leaving the loop (`break`, `return`, a throw) or
 * `close()` ends the subscription; a delivery returned and not yet handled then is not
 * acknowledged and will be delivered again (at-least-once: a `break` right after the work is
 * done redelivers that message; call `fail` or finish the iteration first).
 *
 * With `concurrency` above 1, that many deliveries are fetched ahead (in lanes, as `subscribe`
 * runs handlers); the loop still takes them one at a time.
 */
export interface MessageStream<T = unknown> extends AsyncIterableIterator<Delivery<T>> {
  /** Resolves once subscribed, as `subscribe` resolves; rejects with its error. */
  readonly ready: Promise<void>;
  /** The delivery last returned failed with `error`: retried per `retry`, then dead-lettered. */
  fail(delivery: Delivery<T>, error: unknown): void;
  /** Ends the stream as leaving the loop does. */
  close(): Promise<void>;
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
export interface Broker extends Admin, EventSource {
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
   * `SubscribeOptions` for ordering and concurrency. With `batch` set, the handler gets arrays
   * of deliveries (see `BatchHandler` and `BatchSubscribeOptions`).
   */
  subscribe<T = unknown>(options: BatchSubscribeOptions<T>, handler: BatchHandler<T>): Promise<Subscription>;
  subscribe<T = unknown>(options: SubscribeOptions<T>, handler: Handler<T>): Promise<Subscription>;
  /** Pull consumption; see `MessageStream`. Subscribes at once; `batch` is refused. */
  consume<T = unknown>(options: SubscribeOptions<T>): MessageStream<T>;
  /** Closes subscriptions (as `Subscription.close`), then producers, then the connection. */
  close(): Promise<void>;
}

import type { Logger } from './logger.js';
import { safeLog } from './logger.js';
import type { Headers } from './message.js';

/** What every event about one delivery carries. */
export interface DeliveryEvent {
  /** The adapter: 'memory', 'kafka', 'rabbitmq', or a third party's. */
  readonly broker: string;
  readonly topic: string;
  readonly group: string;
  readonly partition: number | undefined;
  readonly offset: string | undefined;
  /** The message id (see `Delivery.id`). */
  readonly id: string;
  readonly key: string | undefined;
  /** The attempt this event is about, 1-based. */
  readonly attempt: number;
  /** Application headers, e.g. a `traceparent` to continue a trace from. */
  readonly headers: Headers;
}

/**
 * Instrumentation events and their payloads. Listeners run synchronously on the message path:
 * keep them short, and never let them throw (a throwing listener is logged at `warn` and
 * ignored). Emitting costs nothing for an event without listeners.
 */
export interface MqEvents {
  /** A delivery is handed to the handler (each attempt). */
  delivered: DeliveryEvent;
  /** The handler resolved; the delivery will be acknowledged. */
  handled: DeliveryEvent & { readonly durationMs: number };
  /**
   * The handler threw (or the body could not be decoded). `next` says what follows: another
   * attempt, or the dead-letter topic.
   */
  failed: DeliveryEvent & {
    readonly error: unknown;
    readonly durationMs: number;
    readonly next: 'retry' | 'dead-letter';
  };
  /** A failed delivery will be delivered again as `attempt`, after `delayMs`, in this process or by a copy. */
  retried: DeliveryEvent & { readonly delayMs: number; readonly via: 'in-process' | 'copy' };
  /** Attempts exhausted or undecodable: written to `deadLetterTopic` (undefined: discarded). */
  'dead-lettered': DeliveryEvent & { readonly deadLetterTopic: string | undefined; readonly error: unknown };
  /** A consumer group's position was stored (Kafka, memory): the next offset it will read. */
  committed: {
    readonly broker: string;
    readonly topic: string;
    readonly group: string;
    readonly partition: number;
    readonly offset: string;
  };
  /**
   * This member's partitions (or partition queues) changed. On Kafka a partition counts as
   * assigned when its first records arrive; a rejoin that keeps a partition, or a RabbitMQ
   * reconnect, reports it revoked and assigned again.
   */
  rebalanced: {
    readonly broker: string;
    readonly topic: string;
    readonly group: string;
    readonly assigned: readonly number[];
    readonly revoked: readonly number[];
  };
  /**
   * A broker connection dropped; mqkit reconnects by itself. Not on `close()`. RabbitMQ has two
   * connections (consuming and publishing), each reported on its own: the broker is fully
   * connected again once as many `connection-restored` as `connection-lost` events came. The
   * memory broker has no connection; Kafka emits neither event (kafkajs reconnects per request
   * without telling; see `KafkaBroker.on`).
   */
  'connection-lost': { readonly broker: string; readonly error: unknown };
  /** A broker connection is back after a `connection-lost`. */
  'connection-restored': { readonly broker: string };
  /**
   * A message was stored as its producer's `acks` asks: one event per message of a `send`, a
   * `sendBatch` or a `sendOneWay`, after the call's promise would resolve. `partition` and
   * `offset` are those of its `SendResult` (undefined for a delayed message, and `offset` for
   * a one-way send on Kafka, which is written with acks 0).
   */
  'publish-confirmed': {
    readonly broker: string;
    readonly topic: string;
    readonly id: string;
    readonly partition: number | undefined;
    readonly offset: string | undefined;
  };
  /**
   * Sending a message failed: one event per message of a failed `send`, `sendBatch` or
   * `sendOneWay`, with the error the call rejected with (or `onError` got). A timeout counts,
   * though the message may still be stored later; so does a `sendBatch` on Kafka that failed
   * for some of its partitions only.
   *
   * Messages refused before anything was sent do not count: a malformed message
   * (`ConfigError`), a body or headers over the broker's limits (`PublishError`, not
   * retriable), a producer already closed (`ClosedError`), and every message of a `sendBatch`
   * stopped by one such message. Those calls reject at once, nothing left the process, and the
   * message may not have an id yet. So a message the producer took gets exactly one
   * `publish-confirmed` or `publish-failed`, while someone listens.
   */
  'publish-failed': {
    readonly broker: string;
    readonly topic: string;
    readonly id: string;
    readonly error: unknown;
  };
  /** A failure in a background task that nobody awaits (also logged at `warn`). */
  error: { readonly broker: string; readonly error: unknown; readonly context: string };
}

export type MqEventName = keyof MqEvents;
export type MqEventListener<E extends MqEventName> = (event: MqEvents[E]) => void;

/** Subscribing to instrumentation events; `Broker` extends it. */
export interface EventSource {
  /** Calls `listener` for each `event` until the returned function is called. */
  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void;
}

/**
 * Listeners of a set of typed events, called synchronously in the order they subscribed. A
 * listener that throws is logged at `warn` (naming `owner`) and ignored. `has` lets a hot path
 * skip building a payload nobody listens to.
 */
export class Listeners<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(event: never) => void>>();

  /** `owner` names the emitter in the warning, e.g. "the outbox relay's". */
  constructor(
    private readonly logger: Logger | undefined,
    private readonly owner: string,
  ) {}

  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as (event: never) => void);
    return () => {
      set.delete(listener as (event: never) => void);
      if (set.size === 0 && this.listeners.get(event) === set) this.listeners.delete(event);
    };
  }

  /** Whether `event` has a listener: check before building its payload on a hot path. */
  has(event: keyof Events): boolean {
    return this.listeners.has(event);
  }

  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        (listener as (payload: Events[E]) => void)(payload);
      } catch (error) {
        if (this.logger !== undefined)
          safeLog(
            this.logger,
            'warn',
            { event, err: error },
            `a listener of ${this.owner} '${String(event)}' event threw`,
          );
      }
    }
  }
}

/**
 * The events of one broker connection. Adapters emit; users, tracing and metrics listen through
 * `broker.on`. `has` lets the message path skip building a payload nobody listens to.
 */
export class EventHub extends Listeners<MqEvents> implements EventSource {
  constructor(logger?: Logger) {
    super(logger, "mqkit's");
  }

  override on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    return super.on(event, listener);
  }
}

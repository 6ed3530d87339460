import type { BatchMessage, Broker, Producer, Subscription } from '../../core/broker.js';
import { ClosedError, ConfigError, TimeoutError } from '../../core/errors.js';
import type { Handler, OutgoingMessage, SendResult } from '../../core/message.js';
import {
  intOption,
  isPlainObject,
  MAX_CONCURRENCY,
  MAX_PARTITIONS,
  MAX_TIMER_MS,
  oneOf,
  refuseUnknownKeys,
  topicName,
} from '../../core/options.js';
import type { BacklogMonitor, BacklogReport } from './monitor.js';

export interface ExpandOptions {
  /** Most partitions (partition queues) the topic may get. Required; 2 to {@link MAX_PARTITIONS}. */
  maxPartitions: number;
  /** Backlog at or above which the topic is expanded (doubled, up to `maxPartitions`). Required; >= 1. */
  highWater: number;
  /** Partitions each subscription of this process takes: subscriptions = ceil(partitions / this). Default 2; 1 to 1000. */
  partitionsPerWorker?: number;
  /** Concurrency of each subscription. Default 2; 1 to {@link MAX_CONCURRENCY}. */
  concurrency?: number;
  /** Order of the subscriptions: 'key' (default) or 'partition'. */
  order?: 'key' | 'partition';
  /**
   * Longest the strategy waits for the drain before an expansion, and longest a send is held
   * meanwhile (then a retriable `TimeoutError`). When the drain takes longer, the expansion is
   * given up: the held sends are released (or already failed), `onError` gets a `TimeoutError`,
   * and the next attempt comes no sooner than `maxWaitMs` later (sends flow meanwhile).
   * Default 600 000 ms.
   */
  maxWaitMs?: number;
  /** Called after each expansion. */
  onExpand?: (change: { from: number; to: number; workers: number }) => void;
  /**
   * Called when an expansion failed or was given up (held sends are released; the next attempt
   * comes no sooner than `maxWaitMs` later). Default: ignored.
   */
  onError?: (error: unknown) => void;
}

/** A running expand strategy. */
export interface ExpandConsumer {
  /** The producer to send to the topic with: it is held while the topic drains before an expansion. */
  readonly producer: Producer;
  /** The topic's partition count, as this strategy set it. */
  readonly partitions: number;
  /** Subscriptions of this process on the topic. */
  readonly workers: number;
  /** True from the decision to expand until the new subscriptions run. */
  readonly expanding: boolean;
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * Rebalance strategy 4, expand (the seed's second remedy): when the backlog of `monitor`'s
 * topic and group reaches `highWater`, doubles the topic's partitions (Kafka) or partition
 * queues (RabbitMQ, memory), up to `maxPartitions`, and runs more subscriptions of the group in
 * this process (one per `partitionsPerWorker` partitions); consumers elsewhere join as usual.
 *
 * Per-key order across the change: drain-then-switch. A key's partition is its hash modulo the
 * count, so most keys move when the count changes; a key with messages left in its old
 * partition and new ones in another could be handled out of order. So the strategy holds every
 * send of `producer` to the topic, waits until the group's backlog is zero and its handlers
 * are idle, closes its subscriptions (deliveries they fetched ahead and did not handle return
 * to their queues) and checks the backlog is still zero (else it restarts them at the old
 * count and drains again), raises the count, restarts the subscriptions (so each reads the
 * new count), and only then releases the held sends, in call order.
 *
 * Costs and limits: the expansion takes effect after the current backlog is handled at the
 * old parallelism (producers wait meanwhile, as with peak shaving); it helps a sustained
 * overload, while overflow helps the backlog at hand. Order holds only for sends through this
 * `producer`: a producer elsewhere keeps sending during the drain (and on Kafka keeps the old
 * count until its metadata refreshes, `metadataMaxAgeMs`). Partitions are never removed.
 *
 * The strategy runs the group's subscriptions itself (do not also subscribe the group to the
 * topic); it decides and sees the drain on `monitor`'s samples, so the caller starts the
 * monitor and keeps it running while the strategy runs.
 */
export async function expand<T>(
  broker: Broker,
  monitor: BacklogMonitor,
  options: ExpandOptions,
  handler: Handler<T>,
): Promise<ExpandConsumer> {
  if (!isPlainObject(options)) throw new ConfigError('expand', 'must be an options object');
  refuseUnknownKeys(
    options,
    [
      'maxPartitions',
      'highWater',
      'partitionsPerWorker',
      'concurrency',
      'order',
      'maxWaitMs',
      'onExpand',
      'onError',
    ],
    'expand.',
  );
  const maxPartitions = intOption(
    options.maxPartitions,
    'expand.maxPartitions',
    2,
    Number.NaN,
    MAX_PARTITIONS,
  );
  if (Number.isNaN(maxPartitions)) throw new ConfigError('expand.maxPartitions', 'is required');
  const highWater = intOption(options.highWater, 'expand.highWater', 1, Number.NaN);
  if (Number.isNaN(highWater)) throw new ConfigError('expand.highWater', 'is required');
  const perWorker = intOption(options.partitionsPerWorker, 'expand.partitionsPerWorker', 1, 2, 1000);
  const concurrency = intOption(options.concurrency, 'expand.concurrency', 1, 2, MAX_CONCURRENCY);
  const order = oneOf(options.order, 'expand.order', ['key', 'partition'] as const, 'key');
  const maxWaitMs = intOption(options.maxWaitMs, 'expand.maxWaitMs', 0, 600_000, MAX_TIMER_MS);
  if (typeof handler !== 'function') throw new ConfigError('expand.handler', 'must be a function');
  if (options.onExpand !== undefined && typeof options.onExpand !== 'function') {
    throw new ConfigError('expand.onExpand', 'must be a function');
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new ConfigError('expand.onError', 'must be a function');
  }
  const current = (await monitor.sample()).partitions.length;
  const strategy = new Expander<T>(
    broker,
    monitor,
    {
      maxPartitions,
      highWater,
      perWorker,
      concurrency,
      order,
      maxWaitMs,
      onExpand: options.onExpand,
      onError: options.onError,
    },
    handler,
    Math.max(1, current),
  );
  try {
    await strategy.restart();
    // RabbitMQ lists a group's partition queues only once it subscribed.
    strategy.partitions = Math.max(strategy.partitions, (await monitor.sample()).partitions.length);
  } catch (error) {
    await strategy.close().catch(() => {});
    throw error;
  }
  strategy.listen();
  return strategy;
}

class Expander<T> implements ExpandConsumer {
  expanding = false;
  readonly producer: Producer;
  private subscriptions: Subscription[] = [];
  private held: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private closed = false;
  private off: () => void = () => {};
  private wake: (() => void) | undefined;
  /** The expansion running now (close waits for it, so it cannot leave subscriptions behind). */
  private expansion: Promise<void> | undefined;
  /** No expansion before this time (ms since the epoch): set when one failed. */
  private notBefore = 0;
  /** Sends to the topic admitted and not settled. */
  inFlight = 0;
  /** Handler calls running now, and started so far (through `wrapped`). */
  private active = 0;
  private started = 0;
  private readonly wrapped: Handler<T>;

  constructor(
    private readonly broker: Broker,
    private readonly monitor: BacklogMonitor,
    private readonly o: {
      maxPartitions: number;
      highWater: number;
      perWorker: number;
      concurrency: number;
      order: 'key' | 'partition';
      maxWaitMs: number;
      onExpand: ExpandOptions['onExpand'];
      onError: ExpandOptions['onError'];
    },
    handler: Handler<T>,
    public partitions: number,
  ) {
    this.producer = gatedProducer(broker.producer(), monitor.topic, this);
    this.wrapped = async (delivery) => {
      this.active++;
      this.started++;
      try {
        return await handler(delivery);
      } finally {
        this.active--;
      }
    };
  }

  /** Starts deciding on the monitor's samples (after the first subscriptions run). */
  listen(): void {
    if (this.closed) return;
    this.off = this.monitor.on('sample', (report) => this.decide(report));
  }

  get workers(): number {
    return this.subscriptions.length;
  }

  /** Resolves when a send to the topic may go (at once unless expanding). */
  admit(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('producer is closed'));
    if (!this.expanding) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.held = this.held.filter((h) => h !== entry);
          reject(
            new TimeoutError(
              `${this.monitor.topic} is being expanded; not sent within ${this.o.maxWaitMs} ms`,
            ),
          );
        }, this.o.maxWaitMs),
      };
      this.held.push(entry);
    });
  }

  private decide(report: BacklogReport): void {
    if (this.expanding) {
      this.wake?.();
      return;
    }
    if (this.closed || report.total < this.o.highWater || this.partitions >= this.o.maxPartitions) return;
    if (Date.now() < this.notBefore) return;
    this.expanding = true;
    this.expansion = this.expandNow()
      .catch(async (error: unknown) => {
        // Left as it was (or partly raised): consumers run again, the held sends go, and sends
        // flow for a while before the next attempt (a drain too slow now likely is again).
        if (!this.closed && this.subscriptions.length === 0) await this.restart().catch(() => {});
        this.notBefore = Date.now() + this.o.maxWaitMs;
        this.expanding = false;
        this.release();
        if (!this.closed) this.o.onError?.(error);
      })
      .finally(() => {
        this.expansion = undefined;
      });
  }

  private async expandNow(): Promise<void> {
    const deadline = Date.now() + this.o.maxWaitMs;
    for (;;) {
      if (!(await this.drained(deadline))) return;
      // The consumers may still hold deliveries they fetched ahead and have not handled (on
      // RabbitMQ, unacknowledged ones are not in the count the drain saw): closing them returns
      // those to their queues, so this sample, with no consumer attached, counts every message.
      for (const sub of this.subscriptions.splice(0)) await sub.close();
      if (this.closed) return;
      if ((await this.monitor.sample()).total === 0) break;
      // Some were still held: drain them at the old count first.
      await this.restart();
    }
    const from = this.partitions;
    const to = Math.min(this.o.maxPartitions, from * 2);
    await this.broker.ensureTopic(this.monitor.topic, { partitions: to });
    this.partitions = to;
    await this.restart();
    if (this.closed) return;
    this.expanding = false;
    this.o.onExpand?.({ from, to, workers: this.subscriptions.length });
    this.release();
  }

  /**
   * Waits until every message sent before the hold is stored (no send in flight: one admitted
   * just before the hold was placed went at the old count) and handled: the group's backlog is
   * zero on two samples (the first may have started while a send was in flight) and no handler
   * ran or started between them. False if closed meanwhile; a `TimeoutError` after the deadline.
   */
  private async drained(deadline: number): Promise<boolean> {
    for (;;) {
      if (this.closed) return false;
      if (Date.now() >= deadline) {
        throw new TimeoutError(
          `${this.monitor.topic} did not drain within ${this.o.maxWaitMs} ms; not expanded`,
        );
      }
      if (this.inFlight === 0 && this.active === 0) {
        const started = this.started;
        await this.monitor.sample();
        const { total } = await this.monitor.sample();
        if (total === 0 && this.inFlight === 0 && this.active === 0 && this.started === started) return true;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private release(): void {
    for (const h of this.held.splice(0)) {
      clearTimeout(h.timer);
      h.resolve();
    }
  }

  /** Closes the subscriptions and starts one per `perWorker` partitions, which read the current count. */
  async restart(): Promise<void> {
    for (const sub of this.subscriptions.splice(0)) await sub.close();
    const workers = Math.ceil(this.partitions / this.o.perWorker);
    const { topic, group } = this.monitor;
    for (let i = 0; i < workers; i++) {
      if (this.closed) return;
      const sub = await this.broker.subscribe<T>(
        { topic, group, order: this.o.order, concurrency: this.o.concurrency },
        this.wrapped,
      );
      if (this.closed) {
        // close() ran while this one was starting: it did not see it.
        await sub.close();
        return;
      }
      this.subscriptions.push(sub);
    }
  }

  async close(options?: { timeoutMs?: number }): Promise<void> {
    this.closed = true;
    this.off();
    this.wake?.();
    for (const h of this.held.splice(0)) {
      clearTimeout(h.timer);
      h.reject(new ClosedError('producer is closed'));
    }
    await this.expansion;
    for (const sub of this.subscriptions.splice(0)) await sub.close(options);
    await this.producer.close();
  }
}

/** `inner`, with sends to `topic` admitted by `gate` first (held in call order while it expands). */
function gatedProducer(
  inner: Producer,
  topic: string,
  gate: { admit(): Promise<void>; inFlight: number },
): Producer {
  const tracked = async <R>(send: () => Promise<R>): Promise<R> => {
    gate.inFlight++;
    try {
      return await send();
    } finally {
      gate.inFlight--;
    }
  };
  const ours = (m: OutgoingMessage<unknown> | undefined) => {
    try {
      return m !== null && typeof m === 'object' && topicName(m.topic, 'send.topic') === topic;
    } catch {
      return false;
    }
  };
  return {
    async send<U>(message: OutgoingMessage<U>): Promise<SendResult> {
      if (!ours(message as OutgoingMessage<unknown>)) return inner.send(message);
      await gate.admit();
      return tracked(() => inner.send(message));
    },
    async sendBatch<U extends readonly unknown[]>(messages: { readonly [K in keyof U]: BatchMessage<U[K]> }) {
      const list = messages as readonly OutgoingMessage<unknown>[];
      if (!Array.isArray(list) || !list.some(ours)) return inner.sendBatch(messages);
      await gate.admit();
      return tracked(() => inner.sendBatch(messages));
    },
    sendOneWay<U>(message: OutgoingMessage<U>): void {
      if (!ours(message as OutgoingMessage<unknown>)) {
        inner.sendOneWay(message);
        return;
      }
      // Not tracked: a one-way send has no settling to wait for (it may land after a drain).
      gate.admit().then(
        () => inner.sendOneWay(message),
        () => inner.sendOneWay(message),
      );
    },
    close: () => inner.close(),
  };
}

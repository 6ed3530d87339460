import type { Broker, Producer, Subscription } from '../../core/broker.js';
import { ConfigError } from '../../core/errors.js';
import type { Delivery, Handler } from '../../core/message.js';
import {
  intOption,
  isPlainObject,
  MAX_CONCURRENCY,
  MAX_PARTITIONS,
  oneOf,
  refuseUnknownKeys,
  userTopicName,
} from '../../core/options.js';
import type { BacklogMonitor, BacklogReport } from './monitor.js';
import { waterMarks } from './water-marks.js';

export interface OverflowOptions {
  /** The wider topic the backlog is forwarded to. Default `<topic>.overflow`. */
  overflowTopic?: string;
  /** Its partitions (created, or raised, at start). Required; 2 to {@link MAX_PARTITIONS}. */
  partitions: number;
  /** Subscriptions on the wider topic in this process (the extra workers). Default 2; 1 to 1000. */
  workers?: number;
  /** Concurrency of the topic's subscription and of each worker. Default 8; 1 to {@link MAX_CONCURRENCY}. */
  concurrency?: number;
  /**
   * Concurrency of the topic's subscription while it forwards: a forward waits for the broker's
   * acknowledgement, so more of them in flight forward faster (per-key order holds at any
   * value). Default max(`concurrency`, 64); 1 to {@link MAX_CONCURRENCY}.
   */
  forwardConcurrency?: number;
  /** Order of every subscription: 'key' (default) or 'partition'. */
  order?: 'key' | 'partition';
  /** Backlog of the topic at or above which its messages are forwarded. Required; >= 1. */
  highWater: number;
  /** Backlog at or below which (and the wider topic drained) they are handled directly again. Default `highWater / 2`. */
  lowWater?: number;
  /** Called on each switch. */
  onSwitch?: (to: 'direct' | 'forward', report: BacklogReport) => void;
}

/** A running overflow: the topic's subscription and the workers on the wider topic. */
export interface OverflowConsumer {
  /** 'direct': the topic's subscription runs the handler; 'forward': it forwards to the wider topic. */
  readonly mode: 'direct' | 'forward';
  readonly overflowTopic: string;
  /** Messages forwarded so far. */
  readonly forwarded: number;
  /** Forwarded messages not handled (or dead-lettered) by a worker yet, as this process counts them. */
  readonly outstanding: number;
  /** The topic's subscription, then the workers: `close` each as `Subscription.close`. */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * Rebalance strategy 3, overflow (the seed's first remedy for a backlog): while the backlog of
 * `monitor`'s topic and group is high, the group's subscription stops running `handler` and
 * forwards each message (same key, tag, headers, id and body) to a wider topic with more
 * partitions, where `workers` subscriptions of the same group run `handler`, so more handlers
 * work than the topic's partitions allow. Once the topic's backlog is at the low-water mark and
 * every forwarded message was handled, it handles messages directly again.
 *
 * Per-key order across the switch is kept:
 * - to 'forward': the group's key (or partition) lane runs a key's next message only after
 *   the previous one finished, so a message forwarded has its predecessors handled already;
 * - back to 'direct': a message is handled directly only once no forwarded message is
 *   outstanding (the lane waits), so the wider topic's messages of that key come first.
 * On the wider topic a key keeps to one partition and lane, so its messages run in order.
 *
 * Restarts: at start, a backlog the group left on the wider topic (a previous run stopped
 * while forwarding) is read first; if there is one, the strategy starts in 'forward' mode and
 * counts those messages as outstanding (as the wider topic's backlog reported them), so the
 * topic's messages of the same keys queue behind them on the wider topic. On RabbitMQ the
 * count is exact only if no other consumer of the group holds wider-topic messages then.
 *
 * What this process cannot see: outstanding messages are counted from this broker
 * connection's `handled` and `dead-lettered` events on the wider topic, so the workers must be
 * the only consumers of the wider topic's group (run overflow in one process per group, or give
 * each process its own `overflowTopic`). A message dead-lettered on the wider topic goes to
 * its dead-letter topic (`<overflowTopic>.<group>.dlq`). At-least-once: a message redelivered
 * on the topic while forwarding is forwarded again (same id; idempotent handlers absorb it).
 * Bodies are re-encoded as sent to the wider topic: JSON and bytes pass unchanged, a typed
 * topic's codec is not applied there.
 *
 * The strategy runs the group's subscriptions itself (do not also subscribe the group to the
 * topic); it switches on `monitor`'s samples, so the caller starts and stops the monitor.
 */
export async function overflow<T>(
  broker: Broker,
  monitor: BacklogMonitor,
  options: OverflowOptions,
  handler: Handler<T>,
): Promise<OverflowConsumer> {
  if (!isPlainObject(options)) throw new ConfigError('overflow', 'must be an options object');
  refuseUnknownKeys(
    options,
    [
      'overflowTopic',
      'partitions',
      'workers',
      'concurrency',
      'forwardConcurrency',
      'order',
      'highWater',
      'lowWater',
      'onSwitch',
    ],
    'overflow.',
  );
  const partitions = intOption(options.partitions, 'overflow.partitions', 2, Number.NaN, MAX_PARTITIONS);
  if (Number.isNaN(partitions)) throw new ConfigError('overflow.partitions', 'is required');
  const { highWater, lowWater } = waterMarks(options, 'overflow');
  const workers = intOption(options.workers, 'overflow.workers', 1, 2, 1000);
  const concurrency = intOption(options.concurrency, 'overflow.concurrency', 1, 8, MAX_CONCURRENCY);
  const forwardConcurrency = intOption(
    options.forwardConcurrency,
    'overflow.forwardConcurrency',
    1,
    Math.max(concurrency, 64),
    MAX_CONCURRENCY,
  );
  const order = oneOf(options.order, 'overflow.order', ['key', 'partition'] as const, 'key');
  if (typeof handler !== 'function') throw new ConfigError('overflow.handler', 'must be a function');
  if (options.onSwitch !== undefined && typeof options.onSwitch !== 'function') {
    throw new ConfigError('overflow.onSwitch', 'must be a function');
  }
  const { topic } = monitor;
  const wide = userTopicName(options.overflowTopic ?? `${topic}.overflow`, 'overflow.overflowTopic');
  if (wide === topic) throw new ConfigError('overflow.overflowTopic', 'must differ from the topic');
  await broker.ensureTopic(wide, { partitions });
  return new Overflow<T>(
    broker,
    monitor,
    {
      wide,
      workers,
      concurrency,
      forwardConcurrency,
      order,
      highWater,
      lowWater,
      onSwitch: options.onSwitch,
    },
    handler,
  ).start();
}

class Overflow<T> implements OverflowConsumer {
  mode: 'direct' | 'forward' = 'direct';
  forwarded = 0;
  /** Forwarded messages not settled on the wider topic, by id (a message forwarded twice counts twice). */
  private readonly pending = new Map<string, number>();
  private pendingCount = 0;
  /** Messages found on the wider topic at start (a previous run's), not settled yet. */
  private leftover = 0;
  private drainedWaiters: (() => void)[] = [];
  private readonly producer: Producer;
  private readonly subscriptions: Subscription[] = [];
  /** The topic's own subscription, once started. */
  private hot: Subscription | undefined;
  private readonly offs: (() => void)[] = [];

  constructor(
    private readonly broker: Broker,
    private readonly monitor: BacklogMonitor,
    private readonly o: {
      wide: string;
      workers: number;
      concurrency: number;
      forwardConcurrency: number;
      order: 'key' | 'partition';
      highWater: number;
      lowWater: number;
      onSwitch: OverflowOptions['onSwitch'];
    },
    private readonly handler: Handler<T>,
  ) {
    this.producer = broker.producer();
  }

  get overflowTopic(): string {
    return this.o.wide;
  }

  get outstanding(): number {
    return this.pendingCount + this.leftover;
  }

  async start(): Promise<this> {
    const wide = this.o.wide;
    const group = this.monitor.group;
    const settled = (e: { topic: string; group: string; id: string }) => {
      if (e.topic !== wide || e.group !== group) return;
      const count = this.pending.get(e.id);
      if (count !== undefined) {
        if (count > 1) this.pending.set(e.id, count - 1);
        else this.pending.delete(e.id);
        this.pendingCount--;
      } else if (this.leftover > 0) {
        this.leftover--;
      } else {
        return;
      }
      if (this.outstanding === 0) for (const wake of this.drainedWaiters.splice(0)) wake();
    };
    // A previous run's forwarded messages still on the wider topic: forward behind them. Read
    // before this process's workers hold any of them.
    this.leftover = (await this.broker.backlog(wide, group)).total;
    if (this.leftover > 0) this.mode = 'forward';
    // The monitor's listener first: close removes it before the rest.
    this.offs.push(this.monitor.on('sample', (report) => this.decide(report)));
    this.offs.push(this.broker.on('handled', settled), this.broker.on('dead-lettered', settled));
    try {
      for (let i = 0; i < this.o.workers; i++) {
        this.subscriptions.push(
          await this.broker.subscribe<T>(
            { topic: wide, group, order: this.o.order, concurrency: this.o.concurrency },
            this.handler,
          ),
        );
      }
      // The topic's own subscription last, so forwarded messages find workers.
      this.hot = await this.broker.subscribe<T>(
        {
          topic: this.monitor.topic,
          group,
          order: this.o.order,
          concurrency: this.mode === 'forward' ? this.o.forwardConcurrency : this.o.concurrency,
        },
        (d) => this.route(d),
      );
      this.subscriptions.unshift(this.hot);
    } catch (error) {
      await this.close();
      throw error;
    }
    return this;
  }

  private decide(report: BacklogReport): void {
    if (this.mode === 'direct' && report.total >= this.o.highWater) this.switchTo('forward', report);
    else if (this.mode === 'forward' && report.total <= this.o.lowWater && this.outstanding === 0) {
      this.switchTo('direct', report);
    }
  }

  private switchTo(mode: 'direct' | 'forward', report: BacklogReport): void {
    this.mode = mode;
    // The topic's subscription (first): more lanes while forwarding; order holds at any value.
    this.hot?.setConcurrency(mode === 'forward' ? this.o.forwardConcurrency : this.o.concurrency);
    this.o.onSwitch?.(mode, report);
  }

  private async route(d: Delivery<T>): Promise<void> {
    if (this.mode === 'forward') {
      this.pending.set(d.id, (this.pending.get(d.id) ?? 0) + 1);
      this.pendingCount++;
      try {
        await this.producer.send({
          topic: this.o.wide,
          key: d.key,
          tag: d.tag,
          headers: d.headers,
          id: d.id,
          body: d.body,
        });
        this.forwarded++;
      } catch (error) {
        const count = this.pending.get(d.id) ?? 1;
        if (count > 1) this.pending.set(d.id, count - 1);
        else this.pending.delete(d.id);
        this.pendingCount--;
        throw error; // the topic's retry policy applies, as to a failed handler
      }
      return;
    }
    // Direct: a forwarded message of this key may still be waiting on the wider topic.
    if (this.outstanding > 0) {
      await new Promise<void>((resolve, reject) => {
        // Given up (close timed out, partition revoked): not acknowledged, delivered again.
        const abort = () => reject(d.signal.reason ?? new Error('delivery given up'));
        if (d.signal.aborted) return abort();
        d.signal.addEventListener('abort', abort, { once: true });
        this.drainedWaiters.push(() => {
          d.signal.removeEventListener('abort', abort);
          resolve();
        });
      });
    }
    await this.handler(d);
  }

  async close(options?: { timeoutMs?: number }): Promise<void> {
    this.offs.splice(0, 1)[0]?.(); // stop switching; keep counting what the workers finish
    // The topic's subscription first: lanes waiting for the wider topic finish as the workers
    // drain it (or are given up at the timeout), then the workers.
    for (const sub of this.subscriptions.splice(0)) await sub.close(options);
    for (const off of this.offs.splice(0)) off();
    await this.producer.close();
  }
}

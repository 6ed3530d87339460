import type { BatchMessage, Producer } from '../../core/broker.js';
import { ClosedError, ConfigError, PublishError, TimeoutError } from '../../core/errors.js';
import type { OutgoingMessage, SendResult } from '../../core/message.js';
import {
  intOption,
  isPlainObject,
  MAX_TIMER_MS,
  oneOf,
  refuseUnknownKeys,
  topicName,
} from '../../core/options.js';
import type { BacklogMonitor } from './monitor.js';
import { waterMarks } from './water-marks.js';

export interface PeakShavingOptions {
  /** Backlog (messages) at or above which sends to the monitored topic are held. Required; >= 1. */
  highWater: number;
  /** Backlog at or below which they flow again. Default `highWater / 2` (rounded down); 0 to `highWater - 1`. */
  lowWater?: number;
  /**
   * Above the high-water mark: 'wait' (default) holds `send` until the backlog is at the low
   * one; 'fail' rejects it at once with a retriable `PublishError` (nothing was sent).
   */
  mode?: 'wait' | 'fail';
  /** Longest a held send waits before it rejects with a retriable `TimeoutError` (not sent). Default 60 000 ms. */
  maxWaitMs?: number;
}

/** A producer that holds or refuses sends while the backlog is high. */
export interface ShavedProducer extends Producer {
  /** True between crossing the high-water mark and coming back to the low one. */
  readonly shaving: boolean;
}

interface Waiter {
  /** Messages the held call sends. */
  count: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Rebalance strategy 2, peak shaving: wraps `producer` so that sends to the monitor's topic
 * pause above a high-water mark of its group's backlog and resume at a low one (hysteresis,
 * so sends do not flap). Sends to other topics pass through.
 *
 * The backlog it compares is the monitor's last sample plus the messages this producer sent to
 * the topic that the sample may have missed (sent, or still in flight, after it was asked
 * for), so a burst between samples is counted at once; producers in other
 * processes are seen only through samples, so the backlog may overshoot the high-water mark by
 * what they send in one `intervalMs`.
 *
 * Per-key order: kept in 'wait' mode: held sends are released in the order they were called,
 * so sequential sends of a key keep their order (concurrent sends never had one). In 'fail'
 * mode a refused message was not stored: the caller must send it again before the next
 * message of its key, or that key's order is broken. `sendOneWay` (no promise to reject) is
 * held in both modes. Not atomic: a `sendBatch` counts as its length and is held or refused
 * as a whole.
 *
 * Held sends are released by `monitor`'s samples: the caller starts the monitor and keeps it
 * running (a stopped monitor leaves them waiting until `maxWaitMs`).
 */
export function shaveProducer(
  producer: Producer,
  monitor: BacklogMonitor,
  options: PeakShavingOptions,
): ShavedProducer {
  if (!isPlainObject(options)) throw new ConfigError('shaveProducer', 'must be an options object');
  refuseUnknownKeys(options, ['highWater', 'lowWater', 'mode', 'maxWaitMs'], 'shaveProducer.');
  const { highWater, lowWater } = waterMarks(options, 'shaveProducer');
  const mode = oneOf(options.mode, 'shaveProducer.mode', ['wait', 'fail'] as const, 'wait');
  const maxWaitMs = intOption(options.maxWaitMs, 'shaveProducer.maxWaitMs', 0, 60_000, MAX_TIMER_MS);
  return new Shaver(producer, monitor, { highWater, lowWater, mode, maxWaitMs });
}

class Shaver implements ShavedProducer {
  private above = false;
  private sentSinceSample = 0;
  /**
   * This producer's sends to the topic that a sample may not count yet: unsettled (`doneAt`
   * undefined) or settled after the last sample was asked for.
   */
  private recent: { doneAt: number | undefined; count: number }[] = [];
  private readonly waiters: Waiter[] = [];
  private closed = false;
  private readonly off: () => void;

  constructor(
    private readonly inner: Producer,
    private readonly monitor: BacklogMonitor,
    private readonly options: {
      highWater: number;
      lowWater: number;
      mode: 'wait' | 'fail';
      maxWaitMs: number;
    },
  ) {
    this.off = monitor.on('sample', (report) => {
      // Sends since the sample was asked for may be missing from it: keep counting those.
      this.recent = this.recent.filter((s) => s.doneAt === undefined || s.doneAt >= report.requestedAt);
      this.sentSinceSample = this.recent.reduce((n, s) => n + s.count, 0);
      this.update(report.total + this.sentSinceSample);
    });
    if (monitor.latest !== undefined) this.update(monitor.latest.total);
  }

  get shaving(): boolean {
    return this.above;
  }

  private update(backlog: number): void {
    if (!this.above && backlog >= this.options.highWater) this.above = true;
    else if (this.above && backlog <= this.options.lowWater) this.above = false;
    if (this.above) return;
    // Release in call order while the released messages keep below the mark (at least one, so
    // a send larger than the gap still goes); the rest wait, the mark armed again.
    let estimate = backlog;
    let released = 0;
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0] as Waiter;
      if (released > 0 && estimate + waiter.count >= this.options.highWater) {
        this.above = true;
        return;
      }
      this.waiters.shift();
      clearTimeout(waiter.timer);
      waiter.resolve();
      estimate += waiter.count;
      released++;
    }
  }

  /** Resolves when `count` messages may go, with their entry in `recent` to settle; rejects per the mode. */
  private async admit(
    topic: string | undefined,
    count: number,
    mode = this.options.mode,
  ): Promise<{ doneAt: number | undefined; count: number } | undefined> {
    if (this.closed) throw new ClosedError('producer is closed');
    if (topic !== this.monitor.topic) return undefined;
    // Held sends queue behind earlier ones even when the mark is clear, to keep call order.
    if (this.above || this.waiters.length > 0) {
      if (mode === 'fail') {
        throw new PublishError(
          `backlog of ${this.monitor.group} on ${topic} is above ${this.options.highWater}; not sent, retry later`,
          { retriable: true },
        );
      }
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          count,
          resolve,
          reject,
          timer: setTimeout(() => {
            const i = this.waiters.indexOf(waiter);
            if (i >= 0) this.waiters.splice(i, 1);
            reject(
              new TimeoutError(
                `backlog of ${this.monitor.group} on ${topic} stayed above ${this.options.lowWater} for ${this.options.maxWaitMs} ms; not sent`,
              ),
            );
          }, this.options.maxWaitMs),
        };
        this.waiters.push(waiter);
      });
    }
    this.sentSinceSample += count;
    const entry = { doneAt: undefined as number | undefined, count };
    this.recent.push(entry);
    const base = this.monitor.latest?.total ?? 0;
    if (base + this.sentSinceSample >= this.options.highWater) this.above = true;
    return entry;
  }

  private async settled<R>(
    entry: { doneAt: number | undefined } | undefined,
    send: () => Promise<R>,
  ): Promise<R> {
    try {
      return await send();
    } finally {
      if (entry !== undefined) entry.doneAt = Date.now();
    }
  }

  async send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    const entry = await this.admit(safeTopic(message as OutgoingMessage<unknown>), 1);
    return this.settled(entry, () => this.inner.send(message));
  }

  async sendBatch<T extends readonly unknown[]>(
    messages: { readonly [K in keyof T]: BatchMessage<T[K]> },
  ): Promise<SendResult[]> {
    const list = messages as readonly OutgoingMessage<unknown>[];
    const ours = Array.isArray(list) ? list.filter((m) => safeTopic(m) === this.monitor.topic).length : 0;
    const entry = ours > 0 ? await this.admit(this.monitor.topic, ours) : undefined;
    return this.settled(entry, () => this.inner.sendBatch(messages));
  }

  sendOneWay<T>(message: OutgoingMessage<T>): void {
    const topic = safeTopic(message as OutgoingMessage<unknown>);
    if (topic !== this.monitor.topic || this.closed || (!this.above && this.waiters.length === 0)) {
      if (topic === this.monitor.topic) {
        this.sentSinceSample++;
        // Written to the socket now; when the broker stores it is unknown, so the next sample
        // that starts a moment later is taken to count it.
        this.recent.push({ doneAt: Date.now(), count: 1 });
      }
      this.inner.sendOneWay(message);
      return;
    }
    const waiting = this.admit(topic, 1, 'wait');
    waiting.then(
      (entry) => {
        this.inner.sendOneWay(message);
        if (entry !== undefined) entry.doneAt = Date.now();
      },
      () => this.inner.sendOneWay(message), // timed out or closed: send anyway, it was never refusable
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.off();
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new ClosedError('producer is closed'));
    }
    await this.inner.close();
  }
}

function safeTopic(message: OutgoingMessage<unknown> | undefined): string | undefined {
  if (message === null || typeof message !== 'object') return undefined;
  try {
    return topicName(message.topic, 'send.topic');
  } catch {
    return undefined; // the wrapped producer refuses it with the proper error
  }
}

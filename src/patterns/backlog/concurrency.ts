import type { Subscription } from '../../core/broker.js';
import { ConfigError } from '../../core/errors.js';
import { intOption, isPlainObject, MAX_CONCURRENCY, refuseUnknownKeys } from '../../core/options.js';
import type { BacklogMonitor, BacklogReport } from './monitor.js';

export interface ConcurrencyStrategyOptions {
  /** Lowest concurrency. Default 1; 1 to `max`. */
  min?: number;
  /** Highest concurrency. Required; `min` to {@link MAX_CONCURRENCY}. */
  max: number;
  /** Called after each change, e.g. to log it. */
  onChange?: (change: { from: number; to: number; report: BacklogReport }) => void;
}

/** A running strategy; `stop()` detaches it and leaves the concurrency where it is. */
export interface BacklogStrategy {
  stop(): void;
}

/**
 * Rebalance strategy 1: raises and lowers `subscription`'s handler concurrency between `min`
 * and `max` as the monitored backlog grows or shrinks. On each sample of `monitor`:
 * - backlog small (empty, or no more than the group handles in one sampling interval at its
 *   current rate out, `rateOut × intervalMs`) and not growing (net rate ≤ 0, or unknown):
 *   halve the concurrency. Under continuous traffic a Kafka backlog is never empty (what was
 *   handled since the last commit still counts), so "small" rather than "empty";
 * - backlog larger and not shrinking (net rate ≥ 0, or unknown): double it;
 * - otherwise (shrinking, or small and growing): keep it.
 * No threshold beyond the bounds: doubling reaches any needed level in log2(max/min) samples.
 * A halving that leaves too few lanes shows as a growing backlog and is doubled back: under a
 * steady load the concurrency may alternate between two neighbouring levels.
 *
 * Per-key order: kept. `Subscription.setConcurrency` changes how many lanes run at once, never
 * the lane of a key: with order 'key' more keys run in parallel, a key never twice; with
 * 'partition', more partitions at once (a single partition gains nothing); with 'concurrent'
 * there is no order to keep. It helps only handlers that wait (I/O), not CPU-bound ones, and
 * never beyond the messages the broker delivers at once (Kafka's and RabbitMQ's prefetch).
 *
 * The monitor must watch the subscription's topic and group; it is not started or stopped here.
 */
export function scaleConcurrency(
  subscription: Subscription,
  monitor: BacklogMonitor,
  options: ConcurrencyStrategyOptions,
): BacklogStrategy {
  if (!isPlainObject(options)) throw new ConfigError('scaleConcurrency', 'must be an options object');
  refuseUnknownKeys(options, ['min', 'max', 'onChange'], 'scaleConcurrency.');
  const max = intOption(options.max, 'scaleConcurrency.max', 1, Number.NaN, MAX_CONCURRENCY);
  if (Number.isNaN(max)) throw new ConfigError('scaleConcurrency.max', 'is required');
  const min = intOption(options.min, 'scaleConcurrency.min', 1, 1, max);
  if (options.onChange !== undefined && typeof options.onChange !== 'function') {
    throw new ConfigError('scaleConcurrency.onChange', 'must be a function');
  }
  if (monitor.topic !== subscription.topic || monitor.group !== subscription.group) {
    throw new ConfigError(
      'scaleConcurrency.monitor',
      `watches ${monitor.topic}/${monitor.group}, not the subscription's ${subscription.topic}/${subscription.group}`,
    );
  }
  const apply = (report: BacklogReport) => {
    const from = subscription.concurrency;
    let to = from;
    const perInterval = report.rateOut === undefined ? 0 : (report.rateOut * monitor.intervalMs) / 1000;
    const small = report.total === 0 || report.total <= perInterval;
    const growing = report.netRate !== undefined && report.netRate > 0;
    const shrinking = report.netRate !== undefined && report.netRate < 0;
    if (report.total === 0 || (small && !growing)) to = Math.max(min, Math.floor(from / 2));
    else if (!small && !shrinking) to = Math.min(max, from * 2);
    to = Math.min(max, Math.max(min, to));
    if (to === from) return;
    subscription.setConcurrency(to);
    options.onChange?.({ from, to, report });
  };
  const off = monitor.on('sample', apply);
  return { stop: off };
}

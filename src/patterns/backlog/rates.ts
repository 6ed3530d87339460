import type { PartitionSample } from './health.js';

/** A sample with what only the monitor uses: the parts of the backlog and the oldest message's time. */
export interface FullSample extends PartitionSample {
  readonly inFlight?: number | undefined;
  readonly oldestTimestamp?: number | undefined;
}

/** How a partition's lag in seconds was obtained. */
export type LagSource = 'measured' | 'estimated';

/** Rates, lag in seconds and time to drain of one partition, derived from its samples. */
export interface PartitionRates {
  /** Messages stored per second over the window; where the broker has end offsets. */
  rateIn: number | undefined;
  /** Messages consumed (committed) per second over the window; where the broker has offsets. */
  rateOut: number | undefined;
  /** Change of the backlog per second over the window (in minus out); negative while draining. */
  netRate: number | undefined;
  /**
   * Age in seconds of the oldest unconsumed message: measured from its store time where the
   * broker tells (memory); else estimated (see `source`); 0 with no backlog; undefined when
   * the history cannot tell yet.
   */
  lagSeconds: number | undefined;
  lagSource: LagSource | undefined;
  /**
   * Seconds until the backlog is empty at the window's rates; 0 with no backlog; undefined
   * while it is not shrinking.
   */
  drainSeconds: number | undefined;
}

/**
 * Derives rates from `samples` (one partition, oldest first), the last standing for now.
 *
 * Lag in seconds, where the broker gives no store time:
 * - with offsets (Kafka): the time the end offset passed the committed position, found in the
 *   window's end-offset history and interpolated between the two samples around it; older
 *   than the window, it is extrapolated at the window's rate in (or the window's span, a lower
 *   bound, with nothing coming in).
 * - without (RabbitMQ): backlog divided by the rate out, estimated as the rate of shrinking;
 *   undefined while the backlog does not shrink.
 */
export function partitionRates(samples: readonly FullSample[]): PartitionRates {
  const last = samples[samples.length - 1];
  if (last === undefined) {
    return {
      rateIn: undefined,
      rateOut: undefined,
      netRate: undefined,
      lagSeconds: undefined,
      lagSource: undefined,
      drainSeconds: undefined,
    };
  }
  const first = samples[0]!;
  const seconds = (last.at - first.at) / 1000;
  const per = (a: number | undefined, b: number | undefined) =>
    seconds > 0 && a !== undefined && b !== undefined ? Math.max(0, (b - a) / seconds) : undefined;
  const rateIn = per(first.end, last.end);
  const rateOut = per(first.committed, last.committed);
  const netRate = seconds > 0 ? (last.backlog - first.backlog) / seconds : undefined;

  let lagSeconds: number | undefined;
  let lagSource: LagSource | undefined;
  if (last.backlog === 0) {
    lagSeconds = 0;
  } else if (last.oldestTimestamp !== undefined) {
    lagSeconds = Math.max(0, (last.at - last.oldestTimestamp) / 1000);
    lagSource = 'measured';
  } else if (last.committed !== undefined && last.end !== undefined) {
    lagSeconds = ageFromOffsets(samples, last.committed, rateIn);
    lagSource = lagSeconds === undefined ? undefined : 'estimated';
  } else if (netRate !== undefined && netRate < 0) {
    lagSeconds = last.backlog / -netRate;
    lagSource = 'estimated';
  }

  let drainSeconds: number | undefined;
  if (last.backlog === 0) drainSeconds = 0;
  else if (rateIn !== undefined && rateOut !== undefined) {
    drainSeconds = rateOut > rateIn ? last.backlog / (rateOut - rateIn) : undefined;
  } else if (netRate !== undefined && netRate < 0) drainSeconds = last.backlog / -netRate;
  return { rateIn, rateOut, netRate, lagSeconds, lagSource, drainSeconds };
}

/** When the message at `committed` was stored, from the end-offset history; its age in seconds. */
function ageFromOffsets(
  samples: readonly FullSample[],
  committed: number,
  rateIn: number | undefined,
): number | undefined {
  const now = samples[samples.length - 1]!.at;
  const first = samples[0]!;
  if (first.end === undefined) return undefined;
  if (first.end > committed) {
    // Stored before the window began: extrapolate backwards at the rate in.
    const before = rateIn !== undefined && rateIn > 0 ? (first.end - committed) / rateIn : 0;
    return (now - first.at) / 1000 + before;
  }
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    if (a.end === undefined || b.end === undefined) continue;
    if (b.end > committed) {
      // The end offset passed `committed` between a and b: interpolate the time it did.
      const fraction = b.end === a.end ? 1 : (committed - a.end + 1) / (b.end - a.end);
      const storedAt = a.at + Math.min(1, Math.max(0, fraction)) * (b.at - a.at);
      return (now - storedAt) / 1000;
    }
  }
  return 0;
}

import hdr from 'hdr-histogram-js';

/** Latency percentiles of a run, in milliseconds (recorded in microseconds). */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

/**
 * An HDR histogram of latencies recorded in microseconds, 3 significant digits, from 1 µs up
 * to one hour (longer values are clamped, so a stalled run still reports).
 */
export class LatencyHistogram {
  readonly #h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });

  /** Records one latency in milliseconds; negatives (clock steps) count as 0. */
  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.#h.recordValue(Math.min(3_600_000_000, Math.max(0, us)));
  }

  /** Records `count` equal latencies at once. */
  recordMany(ms: number, count: number): void {
    const us = Math.min(3_600_000_000, Math.max(0, Math.round(ms * 1000)));
    this.#h.recordValueWithCount(us, count);
  }

  summary(): LatencySummary {
    const h = this.#h;
    // A percentile is its bucket's highest equivalent value, which can lie above the largest
    // value recorded: clamp it to the maximum so p99.9 never exceeds max.
    const at = (p: number) =>
      h.totalCount === 0 ? 0 : Math.min(h.getValueAtPercentile(p), h.maxValue) / 1000;
    return {
      count: h.totalCount,
      p50: at(50),
      p95: at(95),
      p99: at(99),
      p999: at(99.9),
      max: h.totalCount === 0 ? 0 : h.maxValue / 1000,
    };
  }
}

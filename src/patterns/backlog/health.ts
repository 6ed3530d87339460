/**
 * One observation of one partition (or partition queue) of a group's backlog, as the backlog
 * monitor keeps it: what `Admin.backlog` reported, and when.
 */
export interface PartitionSample {
  /** When the sample was taken, ms since the epoch. */
  readonly at: number;
  /** Messages behind (the partition's `backlog`). */
  readonly backlog: number;
  /** The group's committed position, where the broker has offsets (Kafka, memory). */
  readonly committed?: number | undefined;
  /** The partition's end offset, where the broker has offsets. */
  readonly end?: number | undefined;
  /** Consumers attached, where the broker tells. */
  readonly consumers?: number | undefined;
}

/**
 * A partition's health over the recent samples, in the spirit of LinkedIn Burrow's rules:
 * - `ok`: the backlog was empty at some sample of the window, or the group is moving and the
 *   backlog is no larger at the last sample than at the first (keeps pace; as Burrow).
 * - `catching-up`: behind at every sample, moving, and the backlog is smaller at the last
 *   sample than at the first (the trend over the window, not one step).
 * - `falling-behind`: behind at every sample, moving, but the backlog is larger at the last
 *   sample than at the first (Burrow's warning).
 * - `stalled`: behind, consumers attached (or unknown), and no progress: the position did not
 *   move over the whole window, or has not moved for longer than the span over which it did
 *   move since the window's oldest sample (a handler that blocks, a poison message retried in
 *   place). A consumer committing less often than it is sampled reads right as long as the
 *   window spans at least two commit intervals. Without offsets
 *   (RabbitMQ) progress is a shrinking backlog, and a backlog that never shrank but grew is
 *   `falling-behind` (AMQP cannot tell a slow consumer from a stuck one while producers send).
 * - `stopped`: behind with no consumer attached at the last two samples (where the broker
 *   tells; a consumer gone), or, where it does not, no progress as for `stalled` after progress
 *   earlier in the window (no commits for longer than the commit history spans).
 * - `rewound`: the committed position went backwards within the window (a replay, a reset).
 * - `unknown`: fewer than {@link MIN_SAMPLES} samples and a backlog now.
 */
export type PartitionHealth =
  | 'ok'
  | 'catching-up'
  | 'falling-behind'
  | 'stalled'
  | 'stopped'
  | 'rewound'
  | 'unknown';

/** Samples a verdict other than `ok` needs. */
export const MIN_SAMPLES = 3;

/** Health verdicts from best to worst, for the group's overall verdict (the worst partition's). */
export const HEALTH_ORDER: readonly PartitionHealth[] = [
  'ok',
  'unknown',
  'catching-up',
  'falling-behind',
  'rewound',
  'stalled',
  'stopped',
];

/** The worse of two verdicts (see {@link HEALTH_ORDER}). */
export function worseHealth(a: PartitionHealth, b: PartitionHealth): PartitionHealth {
  return HEALTH_ORDER.indexOf(a) >= HEALTH_ORDER.indexOf(b) ? a : b;
}

/**
 * Whether the group made progress from `before` to `after`: its committed position advanced
 * where offsets exist; else (RabbitMQ) the backlog shrank, the only sign AMQP gives. Without
 * offsets a partition whose backlog holds exactly steady while consumers work through it looks
 * like no progress.
 */
function progressed(before: PartitionSample, after: PartitionSample): boolean {
  if (before.committed !== undefined && after.committed !== undefined)
    return after.committed > before.committed;
  return after.backlog < before.backlog;
}

/**
 * The health of one partition from its samples, oldest first (the window the caller keeps;
 * the monitor's `window` option). A pure function: the verdict depends on the samples alone,
 * with no threshold to tune. The time of the last sample stands for "now".
 */
export function partitionHealth(samples: readonly PartitionSample[]): PartitionHealth {
  const n = samples.length;
  if (n === 0) return 'unknown';
  const last = samples[n - 1]!;
  for (let i = 1; i < n; i++) {
    const a = samples[i - 1]!.committed;
    const b = samples[i]!.committed;
    if (a !== undefined && b !== undefined && b < a) return 'rewound';
  }
  if (last.backlog === 0) return 'ok';
  if (n < MIN_SAMPLES) return 'unknown';
  const previous = samples[n - 2]!;
  if (last.consumers === 0 && previous.consumers === 0) return 'stopped';
  if (samples.some((s) => s.backlog === 0)) return 'ok';

  let lastProgress: number | undefined;
  for (let i = 1; i < n; i++) {
    if (progressed(samples[i - 1]!, samples[i]!)) lastProgress = samples[i]!.at;
  }
  const consumersKnown = last.consumers !== undefined;
  if (lastProgress === undefined) {
    // Without offsets a growing backlog may be a consumer too slow or one stuck while producers
    // send: 'falling-behind' covers both; 'stalled' is kept for a backlog that does not move.
    const offsets = last.committed !== undefined;
    return !offsets && last.backlog > samples[0]!.backlog ? 'falling-behind' : 'stalled';
  }
  // Burrow's "stopped" rule: idle since the last progress for longer than the window had
  // progress before it, measured from the window's oldest sample (as Burrow measures from the
  // oldest offset of its window). From the first progress step instead, a consumer that
  // commits less often than it is sampled would read as stalled between its commits.
  if (last.at - lastProgress > lastProgress - samples[0]!.at) {
    return consumersKnown ? 'stalled' : 'stopped';
  }
  // Moving: the trend over the window decides (a step up or down in between is noise).
  const first = samples[0]!.backlog;
  if (last.backlog > first) return 'falling-behind';
  if (last.backlog < first) return 'catching-up';
  return 'ok';
}

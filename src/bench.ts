/**
 * `mqkit/bench`: what a peer library for `mqkit bench --peer MODULE` is written against. The
 * module exports `benchPeer: BenchPeer`; its `run` gives `runWorkload` a `BenchTransport` over
 * the peer library, so the peer sends the same bodies and is verified and measured by the same
 * code as mqkit and the raw clients (every delivery checked for loss, duplicates and per-key
 * order; latency from the intended send time; client CPU per message).
 *
 * The module may be JavaScript, or TypeScript when node runs with a loader (`npx tsx`).
 */

export type { LatencySummary } from './cli/bench/histogram.js';
export type { BenchPeer } from './cli/bench/select.js';
export type { Workload } from './cli/bench/workload.js';
export type {
  BenchMessage,
  BenchOptions,
  BenchResult,
  BenchTransport,
  ProgressListener,
  RunContext,
} from './cli/bench.js';
export { runWorkload } from './cli/bench.js';

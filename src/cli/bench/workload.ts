import { readFile } from 'node:fs/promises';
import type { Acks } from '../../core/broker.js';
import { UsageError } from '../args.js';

/**
 * One benchmark workload: what every broker and every baseline of a `mqkit bench` run is
 * given, unchanged. Counts are integers; `messages` and `durationS` are exclusive (a duration
 * run sends until the time is up, then waits for what was sent).
 */
export interface Workload {
  /** Name shown in reports: a shipped workload's name, a file's name, or `custom`. */
  name: string;
  /** Messages to send in all (over all producers). Ignored when `durationS` > 0. */
  messages: number;
  /** Seconds to send for; 0 = send `messages`. */
  durationS: number;
  /** Body size in bytes, at least {@link MIN_BODY}: the body carries send time, producer id and sequence. */
  size: number;
  /** Producers, each with its own id and sequence numbers (and, for mqkit, its own `Producer`). */
  producers: number;
  /** `sendBatch` calls in flight at once per producer. */
  inflight: number;
  /** Subscriptions in the one group (raw baselines: consumers). */
  consumers: number;
  /** Handler concurrency of each subscription. */
  concurrency: number;
  partitions: number;
  /** Distinct keys, round robin per producer; 0 sends without keys (order is then not checked). */
  keys: number;
  acks: Acks;
  order: 'concurrent' | 'key' | 'partition';
  /**
   * Messages per `sendBatch` call; at a target rate, at most this many: each call sends the
   * messages due by then, so no message waits for its batch to fill.
   */
  batch: number;
  /** mqkit only: deliveries per batch-handler call; 0 = a per-message handler. */
  consumeBatch: number;
  /** Target send rate over all producers, msg/s; 0 = as fast as it goes. */
  rate: number;
  /** Simulated I/O per handler call, ms; 0 = none. */
  handlerMs: number;
  /** Producers wait while more than this many are sent but unhandled; 0 = no limit. */
  maxLag: number;
  /** Seconds without a delivery, once sending is done, before the missing are counted lost. */
  drainTimeoutS: number;
  /** Send everything before the consumers start (a backlog to drain). */
  backlog: boolean;
  /**
   * Messages of an unmeasured run before each measured one, same workload on a topic of its
   * own (JIT, connections, broker-side queue processes); 0 = none.
   */
  warmup: number;
}

/** Bytes every body starts with: send time (f64), producer id (u32), sequence (u32). */
export const MIN_BODY = 16;

export const workloadDefaults: Workload = {
  name: 'custom',
  messages: 100_000,
  durationS: 0,
  size: 100,
  producers: 1,
  inflight: 4,
  consumers: 1,
  concurrency: 16,
  partitions: 4,
  keys: 0,
  acks: 'all',
  order: 'partition',
  batch: 500,
  consumeBatch: 0,
  rate: 0,
  handlerMs: 0,
  maxLag: 50_000,
  drainTimeoutS: 30,
  backlog: false,
  warmup: 0,
};

/** Shipped workloads, on top of the defaults. */
export const namedWorkloads: Record<string, Partial<Workload>> = {
  /** Small bodies as fast as they go: the throughput figure. */
  'small-fast': { size: 100, acks: 'all', messages: 100_000 },
  /** 1 KiB bodies, acks all: the issue's selection figure. */
  '1kib-acks-all': { size: 1024, acks: 'all', messages: 100_000 },
  /** One partition, 1,000 keys, a 1 ms handler, concurrency 100, key order. */
  'order-keys': {
    partitions: 1,
    keys: 1000,
    handlerMs: 1,
    concurrency: 100,
    order: 'key',
    messages: 20_000,
  },
  /** Everything sent first, then drained: consumer throughput on a backlog. */
  'backlog-drain': { backlog: true, maxLag: 0, messages: 100_000, size: 100 },
};

/** A workload a user got wrong: a usage error (one line, exit status 2, no stack). */
export class WorkloadError extends UsageError {
  override readonly name = 'WorkloadError';
}

interface NumberSpec {
  min: number;
  max: number;
}

/** Bounds of each numeric field, also those of the matching command-line option. */
export const workloadBounds: Record<
  Exclude<keyof Workload, 'name' | 'acks' | 'order' | 'backlog'>,
  NumberSpec
> = {
  messages: { min: 1, max: 10_000_000 },
  durationS: { min: 0, max: 86_400 },
  size: { min: MIN_BODY, max: 1_048_576 },
  producers: { min: 1, max: 64 },
  inflight: { min: 1, max: 64 },
  consumers: { min: 1, max: 64 },
  concurrency: { min: 1, max: 1000 },
  partitions: { min: 1, max: 1000 },
  keys: { min: 0, max: 1_000_000 },
  batch: { min: 1, max: 10_000 },
  consumeBatch: { min: 0, max: 10_000 },
  rate: { min: 0, max: 10_000_000 },
  handlerMs: { min: 0, max: 60_000 },
  maxLag: { min: 0, max: 10_000_000 },
  drainTimeoutS: { min: 1, max: 3600 },
  warmup: { min: 0, max: 1_000_000 },
};

/** Bytes a run may hold in bodies at once: `size × batch × inflight × producers`. */
export const MAX_BYTES_IN_FLIGHT = 256 * 1024 * 1024;

const acksValues: readonly Acks[] = ['all', 'leader', 'none'];
const orderValues = ['concurrent', 'key', 'partition'] as const;

/** Command-line spelling of a field: `durationS` is `--duration`, `consumeBatch` is `--consume-batch`. */
export function optionName(field: string): string {
  if (field === 'durationS') return 'duration';
  if (field === 'drainTimeoutS') return 'drain-timeout';
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * Checks every field of a partial workload (from a file or the command line) and returns it
 * typed. Refuses unknown fields by name, non-integers, values out of bounds. `where` prefixes
 * messages (`--` for options, `workload file x: ` for a file).
 */
export function checkWorkload(
  raw: Record<string, unknown>,
  where: (field: string) => string,
): Partial<Workload> {
  const out: Partial<Workload> = {};
  for (const [field, value] of Object.entries(raw)) {
    if (field === 'name') {
      if (typeof value !== 'string' || value.length === 0)
        throw new WorkloadError(`${where(field)} must be a text`);
      out.name = value;
    } else if (field === 'acks') {
      if (!(acksValues as readonly unknown[]).includes(value)) {
        throw new WorkloadError(
          `${where(field)} must be one of ${acksValues.join(', ')} (got ${shown(value)})`,
        );
      }
      out.acks = value as Acks;
    } else if (field === 'order') {
      if (!(orderValues as readonly unknown[]).includes(value)) {
        throw new WorkloadError(
          `${where(field)} must be one of ${orderValues.join(', ')} (got ${shown(value)})`,
        );
      }
      out.order = value as Workload['order'];
    } else if (field === 'backlog') {
      if (typeof value !== 'boolean') throw new WorkloadError(`${where(field)} must be true or false`);
      out.backlog = value;
    } else if (field in workloadBounds) {
      const spec = workloadBounds[field as keyof typeof workloadBounds];
      const n = toInteger(value);
      if (n === undefined || n < spec.min || n > spec.max) {
        throw new WorkloadError(
          `${where(field)} must be a decimal integer from ${spec.min} to ${spec.max} (got ${shown(value)})`,
        );
      }
      (out as Record<string, number>)[field] = n;
    } else {
      throw new WorkloadError(
        `${where(field)} is not a workload field; known: ${Object.keys(workloadDefaults).join(', ')}`,
      );
    }
  }
  return out;
}

/** Digits (grouped with `_` allowed) or a safe integer number; anything else undefined. */
function toInteger(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value !== 'string' || !/^-?\d+(_\d+)*$/.test(value)) return undefined;
  const n = Number(value.replace(/_/g, ''));
  return Number.isSafeInteger(n) ? n : undefined;
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The workload a `--workload` value names: a shipped name, or a `.yaml`/`.yml`/`.json` file
 * holding one object of workload fields (camelCase or the options' kebab-case spelling).
 */
export async function loadWorkload(ref: string): Promise<Partial<Workload>> {
  const shipped = namedWorkloads[ref];
  if (shipped !== undefined) return { ...shipped, name: ref };
  if (!/\.(ya?ml|json)$/i.test(ref)) {
    throw new WorkloadError(
      `unknown workload ${shown(ref)}: expected one of ${Object.keys(namedWorkloads).join(', ')} or a .yaml/.json file`,
    );
  }
  let text: string;
  try {
    text = await readFile(ref, 'utf8');
  } catch (error) {
    throw new WorkloadError(
      `cannot read workload file ${ref}: ${(error as NodeJS.ErrnoException).code ?? error}`,
    );
  }
  return await parseWorkloadText(text, ref);
}

/**
 * A workload file's text (YAML is a superset of JSON, so one parser reads both). The YAML
 * parser is loaded here, on first use, so commands other than bench never load it.
 */
export async function parseWorkloadText(text: string, file: string): Promise<Partial<Workload>> {
  const { parse } = await import('yaml');
  let data: unknown;
  try {
    data = parse(text);
  } catch (error) {
    const first = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    throw new WorkloadError(`workload file ${file}: not YAML or JSON: ${first}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new WorkloadError(`workload file ${file}: expected an object of workload fields`);
  }
  const camel: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    const field =
      key === 'duration' ? 'durationS' : key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    camel[field] = value;
  }
  const base = file.split(/[\\/]/).pop() ?? file;
  return {
    name: base.replace(/\.(ya?ml|json)$/i, ''),
    ...checkWorkload(camel, (f) => `workload file ${file}: ${f}`),
  };
}

/** Defaults, then a workload, then options: a checked, complete workload. */
export function resolveWorkload(...layers: Partial<Workload>[]): Workload {
  const w: Workload = Object.assign({ ...workloadDefaults }, ...layers);
  const inFlight = w.size * w.batch * w.inflight * w.producers;
  if (inFlight > MAX_BYTES_IN_FLIGHT) {
    throw new WorkloadError(
      `--size x --batch x --inflight x --producers is ${inFlight} bytes in flight; at most ${MAX_BYTES_IN_FLIGHT} (256 MiB)`,
    );
  }
  if (w.order === 'key' && w.keys === 0) throw new WorkloadError('order key needs --keys of at least 1');
  if (w.backlog && w.maxLag > 0) w.maxLag = 0;
  return w;
}

/** One line describing a workload, for table headers. */
export function describeWorkload(w: Workload): string {
  const amount = w.durationS > 0 ? `${w.durationS} s` : `${w.messages} messages`;
  const rate = w.rate > 0 ? `${w.rate} msg/s target` : 'max rate';
  return `${w.name}: ${amount} of ${w.size} B, acks ${w.acks}, ${w.partitions} partitions, ${w.keys} keys, order ${w.order}, ${w.producers} producer(s) x batch ${w.batch} x ${w.inflight} in flight, ${w.consumers} consumer(s) x concurrency ${w.concurrency}, ${rate}${w.backlog ? ', backlog first' : ''}${w.handlerMs > 0 ? `, handler ${w.handlerMs} ms` : ''}${w.warmup > 0 ? `, warm-up ${w.warmup}` : ''}`;
}

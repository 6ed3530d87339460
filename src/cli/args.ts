import { redact } from '../core/redact.js';

/** A command line the CLI refuses: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
}

export const commands = ['demo', 'bench', 'lag', 'outbox'] as const;
export type Command = (typeof commands)[number];

/** A count option: decimal digits (optionally grouped with `_`), from `min` to `max`. */
interface CountSpec {
  min: number;
  max: number;
  fallback: number;
}

/**
 * Bounds of the count options of demo and outbox, stated in the usage text. Bench's counts are
 * workload fields, bounded by `workloadBounds` (src/cli/bench/workload.ts).
 */
export const countOptions = {
  orders: { min: 1, max: 1_000_000, fallback: 10_000 },
  limit: { min: 1, max: 100_000, fallback: 100 },
  interval: { min: 100, max: 3_600_000, fallback: 1000 },
  samples: { min: 1, max: 1_000_000, fallback: 3 },
} satisfies Record<string, CountSpec>;
type CountName = keyof typeof countOptions;

/** The options each command takes (every broker command takes --url). */
const optionsOf: Record<Command, readonly string[]> = {
  demo: ['url', 'orders', 'outbox', 'pg'],
  bench: [
    'url',
    'workload',
    'messages',
    'duration',
    'size',
    'producers',
    'inflight',
    'consumers',
    'concurrency',
    'partitions',
    'keys',
    'acks',
    'order',
    'batch',
    'consume-batch',
    'rate',
    'handler-ms',
    'max-lag',
    'drain-timeout',
    'warmup',
    'backlog',
    'baseline',
    'ceiling',
    'kafka-version',
    'peer',
    'repeat',
    'json',
    'md',
    'html',
  ],
  lag: ['url', 'topic', 'group', 'management', 'interval', 'samples', 'watch', 'json'],
  outbox: ['pg', 'table', 'limit', 'requeue', 'failing'],
};
const allOptions = new Set(Object.values(optionsOf).flat());
/**
 * Options that take no value: present means on (stored as 'true'). `--json` is one for `lag`
 * (print JSON) but takes a FILE for `bench`, so it is refused before the command.
 */
const flags: ReadonlySet<string> = new Set(['outbox', 'failing', 'watch', 'json', 'backlog', 'ceiling']);
const flagUnlessBench: ReadonlySet<string> = new Set(['json']);
/** Options bench takes more than once (one run per URL); other commands refuse a repeat. */
const repeatable: ReadonlySet<string> = new Set(['url', 'peer']);

export type CommandLine =
  | { kind: 'help' }
  | { kind: 'version' }
  | {
      kind: 'run';
      command: Command;
      /** Each option's value (the first, for a repeated one). */
      values: Map<string, string>;
      /** Every value of a repeatable option, in order. */
      lists: Map<string, string[]>;
    };

/**
 * Reads argv (without node and the script): one command, then `--name value` or
 * `--name=value` options. A value may start with a single `-` (so `--orders -5` is read as the
 * value -5 and refused by its bounds); a following `--option` is not taken as a value. Flags (`--watch`, `--json`) take none. Throws
 * `UsageError` for anything else: no or an unknown command, an unknown option, an option the
 * command does not take, a missing value, an option given twice, an extra argument, `--json`
 * before the command, `--messages` with `--duration`.
 */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const positionals: string[] = [];
  const values = new Map<string, string>();
  const lists = new Map<string, string[]>();
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (arg === '-v' || arg === '--version') {
      version = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unknown option ${shown(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!allOptions.has(name)) throw new UsageError(`unknown option ${shown(`--${name}`)}`);
    // Whether --json takes a value depends on the command, unknown until it is read.
    if (flagUnlessBench.has(name) && positionals.length === 0) {
      throw new UsageError(
        `--${name} before the command: put the command first: mqkit bench --${name} FILE, mqkit lag --${name}`,
      );
    }
    let value: string;
    if (flags.has(name) && !(flagUnlessBench.has(name) && positionals[0] === 'bench')) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      value = 'true';
    } else if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      value = next;
      i++;
    }
    if (repeatable.has(name)) lists.set(name, [...(lists.get(name) ?? []), value]);
    else if (values.has(name)) throw new UsageError(`--${name} is given twice`);
    if (!values.has(name)) values.set(name, value);
  }
  if (help || positionals[0] === 'help') return { kind: 'help' };
  if (version) return { kind: 'version' };
  const [command, ...extra] = positionals;
  if (command === undefined) {
    throw new UsageError(`no command given: expected ${commands.join(', ')}`);
  }
  if (!(commands as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command ${shown(command)}: expected ${commands.join(', ')}`);
  }
  const cmd = command as Command;
  if (extra.length > 0) throw new UsageError(`unexpected argument ${shown(extra[0]!)} after ${cmd}`);
  for (const name of values.keys()) {
    if (!optionsOf[cmd].includes(name)) throw new UsageError(`--${name} does not apply to ${cmd}`);
  }
  for (const [name, all] of lists) {
    if (all.length > 1 && cmd !== 'bench') throw new UsageError(`--${name} is given twice`);
  }
  if (values.has('messages') && values.has('duration')) {
    throw new UsageError('--messages and --duration exclude each other: give one');
  }
  return { kind: 'run', command: cmd, values, lists };
}

/** A count option's value, or its default when absent. */
export function count(values: Map<string, string>, name: CountName): number {
  const spec: CountSpec = countOptions[name];
  const raw = values.get(name);
  if (raw === undefined) return spec.fallback;
  const n = /^\d+(_\d+)*$/.test(raw) ? Number(raw.replace(/_/g, '')) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max) {
    throw new UsageError(
      `--${name} must be a decimal integer from ${spec.min} to ${spec.max} (got ${shown(raw)})`,
    );
  }
  return n;
}

/** An argument echoed in a message: credentials redacted, one line, bounded length. */
function shown(value: string): string {
  const line = JSON.stringify(redact(value));
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

import { readFileSync } from 'node:fs';
import { connect } from '../connect.js';
import type { Broker } from '../core/broker.js';
import { isMqError } from '../core/errors.js';
import { redact, scrubText, urlSecrets } from '../core/redact.js';
import {
  acks,
  type CommandLine,
  countOptions as c,
  count,
  MAX_BENCH_BYTES_IN_FLIGHT,
  parseCommandLine,
  UsageError,
} from './args.js';
import { benchBroker, benchDefaults, formatResults } from './bench.js';
import { formatDemo, runDemo } from './demo.js';
import { formatOutboxDemo, runOutboxDemo } from './demo-outbox.js';
import { type LagOptions, type LagOutput, lagCommand } from './lag.js';
import { openPgPool, outboxCommand } from './outbox.js';

const range = (name: keyof typeof c) => `${c[name].min}..${c[name].max}`;

const usage = `mqkit <command> [options]

Commands:
  demo    the order scenario: an order service and stock, coupon and points consumers
          --orders N (${range('orders')}, default ${c.orders.fallback})
          --outbox: each order and its events in one PostgreSQL transaction (some roll back),
          published by two outbox relays; --pg URL (default: $DATABASE_URL)
  bench   produce and consume through mqkit; prints throughput and p50/p99 latency
          --messages N (${range('messages')}, default ${benchDefaults.messages})
          --size BYTES (${range('size')}, default ${benchDefaults.size})  --acks all|leader|none
          --partitions N (${range('partitions')})  --batch N (${range('batch')})  --inflight N (${range('inflight')})
          --concurrency N (${range('concurrency')})
          --max-lag N (producers wait while this many are unhandled; ${range('max-lag')}, 0 = no
          limit, default ${benchDefaults.maxLag}); --size x --batch x --inflight at most 256 MiB
  lag     backlog of a group on a topic per partition: messages behind, ready and in flight,
          consumers, rates in and out, lag in seconds (~ an estimate), time to drain, health
          (ok, catching-up, falling-behind, stalled, stopped, rewound; unknown before 3
          samples); fails on an unknown topic or group
          --topic NAME --group NAME
          --samples N (${range('samples')}, default ${c.samples.fallback}; 1 prints the backlog at once, without rates)
          --interval MS between samples (${range('interval')}, default ${c.interval.fallback})
          --watch   refresh until Ctrl-C (or --samples), in place on a terminal
          --json    the report as JSON (with --watch: one object per line)
          --management URL (RabbitMQ: also count unacked deliveries, e.g. http://127.0.0.1:15672)

  outbox  parked outbox rows (and half messages out of checks), oldest first; or re-queue them
          --pg URL (default: $DATABASE_URL)  --table NAME (default mqkit_outbox)
          --limit N (${range('limit')}, default ${c.limit.fallback})  --requeue ID|all
          --failing: also rows still retried after failures (status pending), with their error

Every broker command takes --url (default: $MQ_URL, else memory://). Counts are decimal integers.
  mqkit --help      this text
  mqkit --version   the installed version

Exit status: 0 done, 1 failed (one line on stderr), 2 bad command line (one line on stderr).`;

/** What a command line printed and its exit status; the bin entry writes it out. */
export interface CliResult {
  /** 0 done, 1 failed, 2 a command line refused. */
  code: number;
  stdout: string;
  /** Empty, or one line: `mqkit: <what was wrong>`. */
  stderr: string;
}

function version(): string {
  // src/cli/main.ts and dist/cli/main.js both sit two levels below package.json.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function run(line: CommandLine & { kind: 'run' }, out: LagOutput | undefined): Promise<string> {
  const { command, values } = line;
  if (command === 'outbox') return outboxCommand(values, count(values, 'limit'));
  // Validate every option before connecting: a bad count must not cost a connection attempt.
  const orders = command === 'demo' ? count(values, 'orders') : 0;
  const bench =
    command === 'bench'
      ? {
          ...benchDefaults,
          messages: count(values, 'messages'),
          size: count(values, 'size'),
          acks: acks(values),
          partitions: count(values, 'partitions'),
          batch: count(values, 'batch'),
          inflight: count(values, 'inflight'),
          concurrency: count(values, 'concurrency'),
          maxLag: count(values, 'max-lag'),
        }
      : undefined;
  if (bench !== undefined && bench.size * bench.batch * bench.inflight > MAX_BENCH_BYTES_IN_FLIGHT) {
    throw new UsageError(
      `--size x --batch x --inflight is ${bench.size * bench.batch * bench.inflight} bytes in flight; at most ${MAX_BENCH_BYTES_IN_FLIGHT} (256 MiB)`,
    );
  }
  const topic = values.get('topic');
  const group = values.get('group');
  if (command === 'lag' && (topic === undefined || group === undefined)) {
    throw new UsageError('lag needs --topic NAME and --group NAME');
  }
  if (command === 'demo' && values.has('pg') && !values.has('outbox')) {
    throw new UsageError('demo takes --pg only with --outbox');
  }
  // PostgreSQL first (--pg or DATABASE_URL is checked there): a missing URL is a usage error,
  // found before connecting to the broker.
  const pool =
    command === 'demo' && values.has('outbox') ? await openPgPool(values, 'demo --outbox') : undefined;
  const watch = values.has('watch');
  if (watch && out === undefined && !values.has('samples')) {
    throw new UsageError('lag --watch without a terminal to write to needs --samples N');
  }
  const lagOptions =
    command === 'lag'
      ? {
          topic: topic as string,
          group: group as string,
          intervalMs: count(values, 'interval'),
          samples: values.has('samples') || !watch ? count(values, 'samples') : Number.POSITIVE_INFINITY,
          watch,
          json: values.has('json'),
        }
      : undefined;
  // An empty MQ_URL counts as unset, as shells leave it.
  const url = values.get('url') ?? (process.env.MQ_URL || 'memory://');
  const management = values.get('management');
  let broker: Broker;
  try {
    broker = await connect(
      url,
      management === undefined ? undefined : { rabbitmq: { managementUrl: management } },
    );
  } catch (error) {
    await pool?.end();
    throw error;
  }
  try {
    if (pool !== undefined) {
      try {
        return formatOutboxDemo(await runOutboxDemo(broker, redact(url), orders, pool));
      } finally {
        await pool.end();
      }
    }
    if (command === 'demo') return formatDemo(await runDemo(broker, redact(url), orders));
    if (bench !== undefined) {
      return formatResults([await benchBroker(broker, { ...bench, label: `mqkit ${broker.kind}` })]);
    }
    return await lagCommand(broker, lagOptions as LagOptions, out);
  } finally {
    await broker.close();
  }
}

/**
 * The secrets of the URLs on the command line and in `MQ_URL`. Every URL the CLI prints went
 * through `redact`; everything it prints is then scrubbed of these literally: each password as typed, as
 * `:password@` (a URL a parser cannot read, with a `/` in its password, must not leak either;
 * kept in that form so a common password such as `guest` does not mask every `guest` printed),
 * and, from a URL that parses, what core's `urlSecrets` adds: the decoded password and a user
 * info without a password (a token).
 */
function typedSecrets(argv: readonly string[]): { typed: string[]; parsed: string[] } {
  const typed: string[] = [];
  const parsed: string[] = [];
  for (const arg of [...argv, process.env.MQ_URL ?? '']) {
    const text = arg.startsWith('--') && arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : arg;
    const start = text.indexOf('://');
    const end = text.lastIndexOf('@');
    if (start === -1 || end <= start) continue;
    const userinfo = text.slice(start + 3, end);
    const colon = userinfo.indexOf(':');
    if (colon !== -1 && colon < userinfo.length - 1) typed.push(`${userinfo.slice(colon)}@`);
    if (URL.canParse(text)) {
      const url = new URL(text);
      parsed.push(...urlSecrets(url).filter((secret) => secret !== url.password));
    }
  }
  return { typed, parsed };
}

/** URLs in `text` are already redacted where they were made; this removes what is left literally. */
function scrub(text: string, secrets: { typed: string[]; parsed: string[] }): string {
  let out = text;
  for (const p of secrets.typed) out = out.split(p).join(':***@');
  return scrubText(out, secrets.parsed);
}

/**
 * Runs one command line; never throws. `out` receives the frames of `lag --watch` as they
 * come (the bin entry passes stdout and Ctrl-C); without it a watch returns its frames at
 * the end, which only makes sense with `--samples`. Errors are one line on stderr, `mqkit: ...`, with the
 * error's code for an mqkit error. Nothing printed holds a password.
 */
export async function runCli(argv: readonly string[], out?: LagOutput): Promise<CliResult> {
  const passwords = typedSecrets(argv);
  try {
    const line = parseCommandLine(argv);
    if (line.kind === 'help') return { code: 0, stdout: `${usage}\n`, stderr: '' };
    if (line.kind === 'version') return { code: 0, stdout: `${version()}\n`, stderr: '' };
    // A watch writes its frames through `out` as they come (scrubbed too) and returns ''.
    const scrubbed: LagOutput | undefined =
      out === undefined ? undefined : { ...out, write: (text) => out.write(scrub(text, passwords)) };
    const text = await run(line, scrubbed);
    return { code: 0, stdout: text === '' ? '' : `${scrub(text, passwords)}\n`, stderr: '' };
  } catch (error) {
    const usageError = error instanceof UsageError;
    const text = error instanceof Error ? error.message : String(error);
    const code = isMqError(error) ? ` [${error.code}]` : '';
    const hint = usageError ? ' (mqkit --help lists commands and options)' : '';
    const oneLine = scrub(text, passwords).replace(/\s*\n\s*/g, ' ');
    return { code: usageError ? 2 : 1, stdout: '', stderr: `mqkit: ${oneLine}${code}${hint}\n` };
  }
}

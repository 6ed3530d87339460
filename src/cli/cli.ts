import { accessSync, constants, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connect } from '../connect.js';
import type { Broker } from '../core/broker.js';
import { isMqError } from '../core/errors.js';
import { redact, scrubText, urlSecrets } from '../core/redact.js';
import { type CommandLine, countOptions as c, count, parseCommandLine, UsageError } from './args.js';
import type { Baseline, BenchPeer, SelectionReport } from './bench/select.js';
import {
  checkWorkload,
  loadWorkload,
  namedWorkloads,
  optionName,
  resolveWorkload,
  type Workload,
  workloadBounds as wb,
  workloadDefaults as wd,
} from './bench/workload.js';
import { formatDemo, runDemo } from './demo.js';
import { formatOutboxDemo, runOutboxDemo } from './demo-outbox.js';
import { type LagOptions, type LagOutput, lagCommand } from './lag.js';
import { openPgPool, outboxCommand } from './outbox.js';

const range = (name: keyof typeof c) => `${c[name].min}..${c[name].max}`;
const bounds = (name: keyof typeof wb) => `${wb[name].min}..${wb[name].max}`;

const usage = `mqkit <command> [options]

Commands:
  demo    the order scenario: an order service and stock, coupon and points consumers
          --orders N (${range('orders')}, default ${c.orders.fallback})
          --outbox: each order and its events in one PostgreSQL transaction (some roll back),
          published by two outbox relays; --pg URL (default: $DATABASE_URL)
  bench   one workload on each --url in turn (repeat --url), mqkit then the raw client of the
          broker; throughput, latency percentiles (HDR), lost/duplicated/out-of-order counts
          (every message checked), client CPU per message and peak RSS
          --workload NAME|FILE (${Object.keys(namedWorkloads).join(', ')}, or a .yaml/.json
          file of workload fields); options below override it
          --messages N (${bounds('messages')}, default ${wd.messages})  --duration SECONDS (instead of --messages)
          --size BYTES (${bounds('size')}, default ${wd.size})  --acks all|leader|none (default ${wd.acks})
          --producers N (${bounds('producers')})  --inflight N (batches in flight per producer, ${bounds('inflight')})
          --batch N (messages per send, ${bounds('batch')}, default ${wd.batch})
          --consumers N (${bounds('consumers')})  --concurrency N (${bounds('concurrency')}, default ${wd.concurrency})
          --consume-batch N (batch handler of N, 0 = per message)  --handler-ms N (simulated work)
          --partitions N (${bounds('partitions')}, default ${wd.partitions})  --keys N (0 = no keys)
          --order concurrent|key|partition (default ${wd.order})
          --rate N (msg/s over all producers, latency from the scheduled send time; 0 = max)
          --max-lag N (producers wait while this many are unhandled, 0 = no limit, default ${wd.maxLag})
          --backlog (send everything, then consume)  --drain-timeout SECONDS (default ${wd.drainTimeoutS})
          --warmup N (an unmeasured run of N messages before each measured one, default 0)
          --ceiling: also the brokers' own Java tools (Kafka ProducerPerformance of
          --kafka-version, default $KAFKA_VERSION else 3.9.1; RabbitMQ PerfTest 2.22.1); jars
          fetched once with mvn into ~/.cache/mqkit/ceiling
          --peer MODULE (repeatable): also a peer library, a module exporting benchPeer, written
          against mqkit/bench (this repository: bench/peers/moleculer-channels.ts, after
          npm --prefix bench/peers install)
          --repeat N (rounds of every run, 1..20, default 1; ratios then as min-max and median)
          --baseline raw|none (default raw)  --json FILE  --md FILE  --html FILE (offline charts)
          --size x --batch x --inflight x --producers at most 256 MiB
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
  if (command === 'bench') return bench(line);
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
    return await lagCommand(broker, lagOptions as LagOptions, out);
  } finally {
    await broker.close();
  }
}

/** Options of bench that are not workload fields. */
const notWorkload = new Set([
  'url',
  'workload',
  'baseline',
  'ceiling',
  'kafka-version',
  'peer',
  'repeat',
  'json',
  'md',
  'html',
  'backlog',
]);
const knownSchemes = ['memory:', 'kafka:', 'amqp:', 'amqps:', 'rocketmq:'];

/** The workload a bench command line gives: defaults, then --workload, then options. */
export async function benchWorkload(values: Map<string, string>): Promise<Workload> {
  const ref = values.get('workload');
  const base = ref === undefined ? {} : await loadWorkload(ref);
  const raw: Record<string, unknown> = {};
  for (const [name, value] of values) {
    if (notWorkload.has(name)) continue;
    const field =
      name === 'duration'
        ? 'durationS'
        : name === 'drain-timeout'
          ? 'drainTimeoutS'
          : name.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
    raw[field] = value;
  }
  if (values.has('backlog')) raw.backlog = true;
  const options = checkWorkload(raw, (field) => `--${optionName(field)}`);
  return resolveWorkload(base, options);
}

/** The `benchPeer` export of each `--peer` module (a path, resolved from the working directory). */
async function loadPeers(paths: readonly string[]): Promise<BenchPeer[]> {
  const peers: BenchPeer[] = [];
  for (const path of paths) {
    let module: { benchPeer?: BenchPeer };
    try {
      module = (await import(pathToFileURL(resolvePath(path)).href)) as { benchPeer?: BenchPeer };
    } catch (error) {
      const why = (error instanceof Error ? error.message : String(error)).split('\n')[0];
      // Node loads TypeScript only through a loader; say so rather than "unknown extension".
      const typescript =
        (error as { code?: unknown }).code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[mc]?ts$/.test(path);
      throw new UsageError(
        typescript
          ? `--peer ${path}: a TypeScript module needs a loader: run mqkit with node --import tsx (or compile the peer to JavaScript)`
          : `--peer ${path}: cannot load it: ${why}`,
      );
    }
    const peer = module.benchPeer;
    if (peer === undefined || typeof peer.run !== 'function' || typeof peer.name !== 'string') {
      throw new UsageError(`--peer ${path}: exports no benchPeer { name, brokers, run }`);
    }
    peers.push(peer);
  }
  return peers;
}

async function bench(line: CommandLine & { kind: 'run' }): Promise<string> {
  const { values, lists } = line;
  const workload = await benchWorkload(values);
  const baseline = values.get('baseline') ?? 'raw';
  if (baseline !== 'raw' && baseline !== 'none') {
    throw new UsageError(`--baseline must be raw or none (got ${JSON.stringify(baseline)})`);
  }
  const kafkaVersion = values.get('kafka-version') ?? (process.env.KAFKA_VERSION || '3.9.1');
  if (!/^\d+\.\d+\.\d+$/.test(kafkaVersion)) {
    throw new UsageError(`--kafka-version must look like 3.9.1 (got ${JSON.stringify(kafkaVersion)})`);
  }
  const ceiling = values.has('ceiling') ? { kafkaVersion } : undefined;
  const repeatText = values.get('repeat') ?? '1';
  const repeat = /^\d+$/.test(repeatText) ? Number(repeatText) : Number.NaN;
  if (!(repeat >= 1 && repeat <= 20)) {
    throw new UsageError(
      `--repeat must be a decimal integer from 1 to 20 (got ${JSON.stringify(repeatText)})`,
    );
  }
  const peers = lists.get('peer') === undefined ? [] : await loadPeers(lists.get('peer')!);
  const urls = lists.get('url') ?? [process.env.MQ_URL || 'memory://'];
  for (const url of urls) {
    const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1]?.toLowerCase();
    if (scheme === undefined || !knownSchemes.includes(scheme)) {
      throw new UsageError(
        `--url ${JSON.stringify(redact(url))}: ${scheme === undefined ? 'not a URL' : `unknown scheme ${scheme}`}; use one of ${knownSchemes.join(' ')}`,
      );
    }
  }
  // Every output file writable and every broker reachable before the first run: a typo in the
  // last one must not cost the others' runs.
  for (const option of ['json', 'md', 'html']) {
    const file = values.get(option);
    if (file !== undefined) checkWritable(option, file);
  }
  for (const url of urls) await (await connect(url)).close();
  // Loaded here so other commands never load the bench's dependencies (hdr-histogram-js).
  const { progressBar } = await import('./bench/progress.js');
  const { runSelection } = await import('./bench/select.js');
  const { formatConsole, formatHtml, formatJson, formatMarkdown } = await import('./bench/report.js');
  const progress = progressBar();
  let report: SelectionReport;
  try {
    report = await runSelection(urls, workload, baseline as Baseline, version(), progress.hooks, {
      ...(ceiling ? { ceiling } : {}),
      peers,
      repeat,
    });
  } finally {
    progress.done();
  }
  const written: string[] = [];
  const out = (option: string, render: (r: SelectionReport) => string) => {
    const file = values.get(option);
    if (file === undefined) return;
    writeFileSync(file, render(report));
    written.push(`wrote ${file}`);
  };
  out('json', formatJson);
  out('md', formatMarkdown);
  out('html', formatHtml);
  const text = [formatConsole(report), ...(written.length > 0 ? ['', ...written] : [])].join('\n');
  if (report.failures.length > 0) {
    throw new ReportedFailure(
      text,
      `${report.failures.length} run(s) failed, the others are reported: ${report.failures[0]}`,
    );
  }
  return text;
}

/**
 * A command that printed its report but failed in part (exit 1): `stdout` is the report, the
 * message the one line on stderr.
 */
class ReportedFailure extends Error {
  constructor(
    readonly stdout: string,
    message: string,
  ) {
    super(message);
    this.name = 'ReportedFailure';
  }
}

/** Fails in one line unless `file` can be written: an existing writable file, or a new one in a writable directory. */
function checkWritable(option: string, file: string): void {
  try {
    if (existsSync(file)) accessSync(file, constants.W_OK);
    else accessSync(dirname(resolvePath(file)), constants.W_OK);
  } catch {
    throw new Error(`--${option} ${file}: cannot write there`);
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
 * Whether the command line consumes Ctrl-C itself: only `lag --watch` (it ends cleanly, exit
 * 0). For every other command the bin entry leaves SIGINT to Node's default (exit at once).
 */
export function handlesInterrupt(argv: readonly string[]): boolean {
  try {
    const line = parseCommandLine(argv);
    return line.kind === 'run' && line.command === 'lag' && line.values.has('watch');
  } catch {
    return false;
  }
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
    const stdout = error instanceof ReportedFailure ? `${scrub(error.stdout, passwords)}\n` : '';
    return { code: usageError ? 2 : 1, stdout, stderr: `mqkit: ${oneLine}${code}${hint}\n` };
  }
}

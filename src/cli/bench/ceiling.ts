import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { BenchResult } from '../bench.js';
import { deleteRabbitQueue } from './cleanup.js';
import type { LatencySummary } from './histogram.js';
import type { Workload } from './workload.js';

/**
 * The brokers' own Java load generators, run as the ceiling a client library can reach on this
 * machine: Kafka's `org.apache.kafka.tools.ProducerPerformance` (artifact
 * org.apache.kafka:kafka-tools, the broker's version) and RabbitMQ PerfTest
 * (com.rabbitmq:perf-test 2.22.1, with logback 1.5 on its own classpath). Jars are fetched once
 * with Maven (`mvn dependency:copy-dependencies`) into `<cache>/ceiling/<artifact>-<version>`,
 * `<cache>` being `$MQKIT_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/mqkit`; a half-done
 * fetch is never used (a marker is written last and the folder renamed into place).
 *
 * These tools do not carry mqkit's body, so their rows are not verified (no lost/duplicate
 * counts) and their CPU is not measured (another process).
 */

const MARKER = '.mqkit-complete';
export const PERF_TEST_VERSION = '2.22.1';

function cacheRoot(): string {
  if (process.env.MQKIT_CACHE_DIR) return process.env.MQKIT_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'mqkit');
}

function exec(
  command: string,
  args: string[],
  options: { cwd?: string; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Why the ceiling cannot run here, or undefined when java (and mvn, for a first fetch) are present. */
export function ceilingUnavailable(): string | undefined {
  if (onPath('java') === undefined) return 'java not found on PATH';
  return undefined;
}

/** The classpath folder of `dependencies` (groupId:artifactId:version), fetched on first use. */
async function ensureJars(name: string, dependencies: readonly string[]): Promise<string> {
  const dir = join(cacheRoot(), 'ceiling', name);
  const libs = join(dir, 'libs');
  if (existsSync(join(libs, MARKER))) return libs;
  const mvn = onPath('mvn');
  if (mvn === undefined)
    throw new Error(`--ceiling: mvn not found on PATH, needed once to fetch ${name} into ${dir}`);
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, 'tmp-'));
  try {
    const deps = dependencies
      .map((d) => {
        const [g, a, v] = d.split(':');
        return `<dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
      })
      .join('');
    await writeFile(
      join(work, 'pom.xml'),
      `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion><groupId>mqkit</groupId><artifactId>ceiling</artifactId><version>1</version><packaging>pom</packaging><dependencies>${deps}</dependencies></project>`,
    );
    const fetched = await exec(
      mvn,
      [
        '-q',
        '-B',
        'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies',
        `-DoutputDirectory=${join(work, 'libs')}`,
      ],
      { cwd: work, timeoutMs: 600_000 },
    );
    if (fetched.code !== 0) {
      const last = `${fetched.stdout}\n${fetched.stderr}`.trim().split('\n').pop() ?? '';
      throw new Error(`--ceiling: mvn could not fetch ${name} (exit ${fetched.code}): ${last.slice(0, 200)}`);
    }
    await writeFile(join(work, 'libs', MARKER), new Date().toISOString());
    await rm(libs, { recursive: true, force: true });
    await rename(join(work, 'libs'), libs);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return libs;
}

/**
 * JVM flags for both tools: their summaries are printed with the JVM's default locale
 * (ProducerPerformance formats with `%.2f`), which would give `11461,3` under a German one and
 * break the parsers below.
 */
const JAVA_LOCALE = ['-Duser.language=en', '-Duser.country=US'];

const none: LatencySummary = { count: 0, p50: 0, p95: 0, p99: 0, p999: 0, max: 0 };

function row(
  label: string,
  library: string,
  broker: string,
  w: Workload,
  figures: Partial<BenchResult>,
): BenchResult {
  return {
    label,
    library,
    broker,
    workload: w.name,
    size: w.size,
    sent: w.messages,
    refused: 0,
    received: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    produceRate: 0,
    produceMBps: 0,
    endToEndRate: 0,
    endToEndMBps: 0,
    endToEnd: none,
    publish: none,
    cpuUsPerMessage: 0,
    peakRssMB: 0,
    seconds: 0,
    external: true,
    ...figures,
  };
}

/** `20000 records sent, 11461.3 records/sec (11.19 MB/sec), 604.57 ms avg latency, 883.00 ms max latency, 700 ms 50th, 868 ms 95th, 878 ms 99th, 882 ms 99.9th.` */
export function parseProducerPerformance(stdout: string): Partial<BenchResult> | undefined {
  const m =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th/.exec(
      stdout,
    );
  if (m === null) return undefined;
  const n = m.slice(1).map(Number);
  return {
    sent: n[0]!,
    produceRate: n[1]!,
    produceMBps: n[2]!,
    publish: { count: n[0]!, p50: n[5]!, p95: n[6]!, p99: n[7]!, p999: n[8]!, max: n[4]! },
  };
}

/** PerfTest's summary lines: `sending rate avg: N msg/s`, `receiving rate avg`, and latency lines in µs. */
export function parsePerfTest(stdout: string, size: number): Partial<BenchResult> | undefined {
  const sending = /sending rate avg: (\d+) msg\/s/.exec(stdout);
  const receiving = /receiving rate avg: (\d+) msg\/s/.exec(stdout);
  if (sending === null || receiving === null) return undefined;
  const latency = (what: string): LatencySummary => {
    const m = new RegExp(
      `${what} latency min/median/75th/95th/99th (\\d+)/(\\d+)/(\\d+)/(\\d+)/(\\d+) µs`,
    ).exec(stdout);
    if (m === null) return none;
    const [, , median, , p95, p99] = m.map(Number);
    return { count: 0, p50: median! / 1000, p95: p95! / 1000, p99: p99! / 1000, p999: 0, max: 0 };
  };
  const MB = 1024 * 1024;
  const out = Number(sending[1]);
  const inbound = Number(receiving[1]);
  return {
    produceRate: out,
    produceMBps: (out * size) / MB,
    endToEndRate: inbound,
    endToEndMBps: (inbound * size) / MB,
    endToEnd: latency('consumer'),
    publish: latency('confirm'),
  };
}

/**
 * ProducerPerformance on `hosts` (a topic mqkit created, `topic`), `messages` of `size` at the
 * workload's acks and rate (-1 = as fast as it goes). Produce only: no consumer.
 */
export async function kafkaCeiling(
  hosts: string[],
  topic: string,
  w: Workload,
  version: string,
): Promise<BenchResult> {
  const libs = await ensureJars(`kafka-tools-${version}`, [`org.apache.kafka:kafka-tools:${version}`]);
  const acks = w.acks === 'all' ? 'all' : w.acks === 'leader' ? '1' : '0';
  const result = await exec(
    'java',
    [
      ...JAVA_LOCALE,
      '-cp',
      join(libs, '*'),
      'org.apache.kafka.tools.ProducerPerformance',
      ...['--topic', topic, '--num-records', String(w.messages), '--record-size', String(w.size)],
      ...['--throughput', w.rate > 0 ? String(w.rate) : '-1'],
      ...['--producer-props', `bootstrap.servers=${hosts.join(',')}`, `acks=${acks}`],
    ],
    { timeoutMs: 30 * 60_000 },
  );
  const figures = parseProducerPerformance(result.stdout);
  if (figures === undefined) {
    throw new Error(
      `--ceiling: ProducerPerformance gave no summary (exit ${result.code}): ${result.stderr.trim().split('\n').pop() ?? ''}`,
    );
  }
  return row(`ProducerPerformance ${version}`, 'ProducerPerformance', 'kafka', w, figures);
}

/** Prefix of the environment variables PerfTest reads its options from (see {@link perfTestCommand}). */
const PERF_TEST_ENV_PREFIX = 'MQKIT_PERF_TEST';

/**
 * PerfTest's command line and environment for `url` and `w`: `producers` producers and
 * `consumers` consumers on one auto-deleted `queue`, persistent messages, publisher confirms
 * with `batch × inflight` outstanding (acks `none`: no confirms), consumer prefetch
 * `concurrency × 2`, stopped at `messages` in all (`-C` per producer).
 *
 * The URI, which may carry a password, goes in the environment (PerfTest reads any long option
 * from `<prefix>_<OPTION>`), not on the command line, where any user of the machine could read
 * it in the process list.
 */
export function perfTestCommand(
  url: string,
  w: Workload,
  queue: string,
  classpath: string,
): { args: string[]; env: NodeJS.ProcessEnv } {
  return {
    args: [
      ...JAVA_LOCALE,
      '-cp',
      classpath,
      'com.rabbitmq.perf.PerfTest',
      ...['-x', String(w.producers), '-y', String(w.consumers), '-u', queue, '-ad', 'true'],
      ...['-s', String(w.size), '-C', String(Math.ceil(w.messages / w.producers)), '-f', 'persistent'],
      ...(w.acks === 'none' ? [] : ['-c', String(w.batch * w.inflight)]),
      ...['-q', String(Math.max(64, w.concurrency * 2))],
      ...(w.rate > 0 ? ['-r', String(Math.ceil(w.rate / w.producers))] : []),
    ],
    env: {
      ...process.env,
      RABBITMQ_PERF_TEST_ENV_PREFIX: PERF_TEST_ENV_PREFIX,
      [`${PERF_TEST_ENV_PREFIX}_URI`]: url,
    },
  };
}

/**
 * PerfTest on `url` (see {@link perfTestCommand}). Its queue is deleted afterwards, best
 * effort: auto-delete alone leaves it behind when PerfTest exits before its consumers cancel.
 */
export async function rabbitCeiling(url: string, w: Workload): Promise<BenchResult> {
  const libs = await ensureJars(`perf-test-${PERF_TEST_VERSION}`, [
    `com.rabbitmq:perf-test:${PERF_TEST_VERSION}`,
    'ch.qos.logback:logback-classic:1.5.12',
  ]);
  const queue = `bench-perftest-${Date.now().toString(36)}`;
  const { args, env } = perfTestCommand(url, w, queue, join(libs, '*'));
  let result: Awaited<ReturnType<typeof exec>>;
  try {
    result = await exec('java', args, { timeoutMs: 30 * 60_000, env });
  } finally {
    await deleteRabbitQueue(url, queue);
  }
  const figures = parsePerfTest(result.stdout, w.size);
  if (figures === undefined) {
    throw new Error(
      `--ceiling: PerfTest gave no summary (exit ${result.code}): ${result.stderr.trim().split('\n').pop() ?? ''}`,
    );
  }
  return row(`PerfTest ${PERF_TEST_VERSION}`, 'PerfTest', 'rabbitmq', w, figures);
}

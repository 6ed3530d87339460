import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, cpus, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from '../../connect.js';
import { redact } from '../../core/redact.js';
import {
  type BenchOptions,
  type BenchResult,
  benchBroker,
  benchGroupName,
  benchTopicName,
  type ProgressListener,
} from '../bench.js';
import { deleteRunResources } from './cleanup.js';
import type { Workload } from './workload.js';

/** Which baselines run after mqkit on each broker. */
export type Baseline = 'raw' | 'none';

/** mqkit's figure over the raw client's, on one broker. */
export interface Ratio {
  broker: string;
  /** End-to-end msg/s, mqkit / raw. */
  endToEnd: number;
  /** Produce msg/s, mqkit / raw. */
  produce: number;
  /** Client CPU µs per message, mqkit / raw (lower is better). */
  cpu: number;
  /** With `--ceiling`: mqkit's produce msg/s over the broker's own tool's. */
  ceiling?: number;
}

/** What one URL gave: its runs, or why it could not run. */
export interface BrokerRun {
  /** The URL, credentials redacted. */
  url: string;
  broker: string;
  /** Broker version where cheap to learn (RabbitMQ reports it on connect; Kafka: `--kafka-version` with `--ceiling`). */
  version?: string;
  /** Broker settings where cheap to read (Kafka: brokers and a few broker configs; RabbitMQ: its greeting). */
  settings?: BrokerSettings;
  results: BenchResult[];
  /** With `--repeat N` (N > 1): which round, 1 to N. */
  round?: number;
  ratio?: Ratio;
  /** mqkit's end-to-end msg/s over each peer library's (0 when the peer delivered nothing). */
  vsPeers?: { peer: string; endToEnd: number }[];
}

/**
 * A peer library measured with the same workload (`--peer MODULE`, a module exporting
 * `benchPeer`). It runs the workload through `runWorkload` with a transport of its own, so its
 * rows are verified like mqkit's. Peers live outside the published package (bench/peers/).
 */
export interface BenchPeer {
  /** Library name, also each result's `library`. */
  name: string;
  /** Broker kinds it runs on (`kafka`, `rabbitmq`). */
  brokers: readonly string[];
  run(url: string, options: BenchOptions, onProgress?: ProgressListener): Promise<BenchResult>;
}

/** Where a run happened, for the JSON and HTML reports. */
export interface Environment {
  date: string;
  node: string;
  mqkit: string;
  kafkajs?: string;
  amqplib?: string;
  /** rocketmq-client-nodejs's version. */
  rocketmq?: string;
  platform: string;
  cpu: string;
  cores: number;
  memoryGB: number;
  ci: boolean;
}

/** A whole `mqkit bench` run. */
export interface SelectionReport {
  workload: Workload;
  environment: Environment;
  brokers: BrokerRun[];
  /** What was skipped and why (e.g. `--ceiling` without java). */
  notes: string[];
  /**
   * Runs that failed (a broker lost mid-run, a baseline, peer or tool that threw), one line
   * each: `<run> on <url, redacted>: <error>`. The other runs are still reported; the CLI exits 1.
   */
  failures: string[];
}

/** A package's version from the package.json above its resolved entry; undefined when not installed. */
function packageVersion(name: string): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    let dir = dirname(require.resolve(name));
    for (let i = 0; i < 6; i++) {
      const file = join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version;
      }
      dir = dirname(dir);
    }
  } catch {
    // not installed: the field is left out
  }
  return undefined;
}

export function environment(mqkitVersion: string): Environment {
  const list = cpus();
  const kafkajs = packageVersion('kafkajs');
  const amqplib = packageVersion('amqplib');
  const rocketmq = packageVersion('rocketmq-client-nodejs');
  return {
    date: new Date().toISOString(),
    node: process.version,
    mqkit: mqkitVersion,
    ...(kafkajs ? { kafkajs } : {}),
    ...(amqplib ? { amqplib } : {}),
    ...(rocketmq ? { rocketmq } : {}),
    platform: `${platform()} ${release()} ${arch()}`,
    cpu: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    ci: isCi(),
  };
}

export function isCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** What a broker says about itself, where cheap to ask: versions and the settings that bear on figures. */
export interface BrokerSettings {
  version?: string;
  [setting: string]: string | number | undefined;
}

/** RabbitMQ: its connection greeting (product, version, Erlang); undefined when it cannot be had. */
async function rabbitSettings(url: string): Promise<BrokerSettings | undefined> {
  try {
    const amqp = await import('amqplib');
    const connection = await amqp.connect(url);
    const props = (connection as unknown as { connection: { serverProperties?: Record<string, unknown> } })
      .connection.serverProperties;
    await connection.close();
    if (props === undefined) return undefined;
    const text = (v: unknown) => (v === undefined ? undefined : String(v));
    return {
      version: text(props.version),
      product: text(props.product),
      erlang: text(props.platform),
      cluster: text(props.cluster_name),
    };
  } catch {
    return undefined;
  }
}

/** Broker settings that bear on durability and throughput, read with kafkajs's admin client. */
const kafkaKeys = [
  'min.insync.replicas',
  'default.replication.factor',
  'log.flush.interval.messages',
  'num.io.threads',
  'num.network.threads',
  'inter.broker.protocol.version',
];

/** Kafka: brokers, controller and a few broker configs; undefined when they cannot be had. */
async function kafkaSettings(url: string): Promise<BrokerSettings | undefined> {
  try {
    const { default: kafkajs } = await import('kafkajs');
    const { kafkaHosts } = await import('./raw-kafkajs.js');
    const admin = new kafkajs.Kafka({ brokers: kafkaHosts(url), logLevel: kafkajs.logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const cluster = await admin.describeCluster();
      const settings: BrokerSettings = { brokers: cluster.brokers.length, clusterId: cluster.clusterId };
      const first = cluster.brokers[0];
      if (first !== undefined) {
        const configs = await admin.describeConfigs({
          resources: [
            { type: kafkajs.ConfigResourceTypes.BROKER, name: String(first.nodeId), configNames: kafkaKeys },
          ],
          includeSynonyms: false,
        });
        for (const entry of configs.resources[0]?.configEntries ?? []) {
          settings[entry.configName] = entry.configValue;
        }
      }
      return settings;
    } finally {
      await admin.disconnect();
    }
  } catch {
    return undefined;
  }
}

/** Events of a selection run, for the CLI's progress bar. */
export interface SelectionHooks {
  /** A run starts: its label. */
  onRun?: (label: string) => void;
  onProgress?: ProgressListener;
}

/** The broker a URL's scheme names, as `Broker.kind` spells it; '' for a scheme with no raw baseline. */
function schemeKind(url: string): string {
  const scheme = url.slice(0, url.indexOf(':') + 1);
  if (scheme === 'kafka:') return 'kafka';
  if (scheme === 'amqp:' || scheme === 'amqps:') return 'rabbitmq';
  if (scheme === 'rocketmq:') return 'rocketmq';
  return '';
}

/**
 * Runs one workload on each URL in turn: mqkit, then (with `baseline` 'raw') the raw client
 * of that broker, each on a new topic; with `repeat` above 1, even rounds run the raw client
 * first. A run that throws is recorded in `failures` (after
 * mqkit's, the rest of that URL is skipped) and the others go on. The mqkit/raw ratio is given
 * only when the raw client ran the same workload (see {@link rawMismatch}); otherwise a note
 * says why there is none. Memory has no raw baseline.
 */
export async function runSelection(
  urls: readonly string[],
  workload: Workload,
  baseline: Baseline,
  mqkitVersion: string,
  hooks: SelectionHooks = {},
  more: { ceiling?: { kafkaVersion: string }; peers?: readonly BenchPeer[]; repeat?: number } = {},
): Promise<SelectionReport> {
  const { ceiling, peers = [], repeat = 1 } = more;
  let round = 1;
  const tag = () => (repeat > 1 ? ` #${round}` : '');
  const env = environment(mqkitVersion);
  const runs: BrokerRun[] = [];
  const notes: string[] = [];
  const failures: string[] = [];
  // Each measured run, after a warm-up of the same workload when the workload asks for one.
  const measure = async (
    label: string,
    run: (w: Workload & { label: string }, onProgress?: ProgressListener) => Promise<BenchResult>,
  ): Promise<BenchResult> => {
    // Labels carry the round when there are several; the warm-up runs before the first only.
    label = `${label}${tag()}`;
    if (workload.warmup > 0 && round === 1) {
      hooks.onRun?.(`${label} (warm-up)`);
      await run(
        { ...workload, messages: workload.warmup, durationS: 0, label: `${label} warm-up` },
        hooks.onProgress,
      );
    }
    hooks.onRun?.(label);
    return run({ ...workload, label }, hooks.onProgress);
  };
  for (; round <= repeat; round++) {
    for (const url of urls) {
      const results: BenchResult[] = [];
      let kind = '';
      // A run that throws is recorded and the selection goes on: finished runs are not lost.
      const attempt = async (what: string, step: () => Promise<void>): Promise<boolean> => {
        try {
          await step();
          return true;
        } catch (error) {
          const text = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
          failures.push(`${what}${tag()} on ${redact(url)}: ${text.split(url).join(redact(url))}`);
          return false;
        }
      };
      // The raw client's run, when there is one, is pushed after mqkit's (results[0] is mqkit's
      // when mqkit ran).
      const runRaw = async (): Promise<void> => {
        if (baseline === 'raw' && rawKind === 'kafka') {
          await attempt('raw kafkajs', async () => {
            const { benchRawKafkajs } = await import('./raw-kafkajs.js');
            results.push(
              await measure('raw kafkajs', (w, onProgress) => benchRawKafkajs(url, w, onProgress)),
            );
          });
        }
        if (baseline === 'raw' && rawKind === 'rabbitmq') {
          await attempt('raw amqplib', async () => {
            const { benchRawAmqplib } = await import('./raw-amqplib.js');
            const { prefetchFor, resolveRabbitMqOptions } = await import(
              '../../adapters/rabbitmq/options.js'
            );
            const prefetch = prefetchFor(resolveRabbitMqOptions(), workload.concurrency);
            results.push(
              await measure('raw amqplib', (w, onProgress) =>
                benchRawAmqplib(url, { ...w, prefetch }, onProgress),
              ),
            );
          });
        }
        if (baseline === 'raw' && rawKind === 'rocketmq') {
          await attempt('raw rocketmq-client-nodejs', async () => {
            const { benchRawRocketmq } = await import('./raw-rocketmq.js');
            results.push(
              await measure('raw rocketmq-client-nodejs', (w, onProgress) =>
                benchRawRocketmq(url, w, onProgress),
              ),
            );
          });
        }
      };
      const runMqkit = () =>
        attempt('mqkit', async () => {
          results.unshift(
            await measure('mqkit', async (w, onProgress) => {
              const broker = await connect(url);
              kind = broker.kind;
              const topic = benchTopicName();
              try {
                return await benchBroker(
                  broker,
                  { ...w, topic, label: w.label.replace(/^mqkit/, `mqkit ${kind}`) },
                  onProgress,
                );
              } finally {
                await broker.close();
                // Each run's topic is its own: delete it (and on RabbitMQ its group's topology).
                await deleteRunResources({
                  url,
                  broker: kind,
                  topic,
                  group: benchGroupName(topic),
                  partitions: w.partitions,
                });
              }
            }),
          );
        });
      // In one process, the run that goes second inherits the first one's heap, JIT state and
      // broker-side leftovers; with several rounds the raw client goes first in even rounds so
      // neither side always pays for that.
      const rawKind = schemeKind(url);
      const rawFirst = repeat > 1 && round % 2 === 0 && baseline === 'raw';
      if (rawFirst) await runRaw();
      const mqkitRan = await runMqkit();
      if (!mqkitRan) {
        // Without mqkit's run there is nothing to compare the others with on this URL; a raw
        // run that went first (even rounds) is still reported, without a ratio.
        const broker = kind !== '' ? kind : results.length > 0 ? rawKind : '';
        if (broker !== '') runs.push({ url: redact(url), broker, ...(repeat > 1 ? { round } : {}), results });
        continue;
      }
      const settings =
        kind === 'rabbitmq'
          ? await rabbitSettings(url)
          : kind === 'kafka'
            ? await kafkaSettings(url)
            : undefined;
      if (settings !== undefined && kind === 'kafka' && ceiling !== undefined)
        settings.version = ceiling.kafkaVersion;
      const version = settings?.version;
      if (!rawFirst) await runRaw();
      for (const peer of peers) {
        if (!peer.brokers.includes(kind)) continue;
        await attempt(`${peer.name} ${kind}`, async () => {
          results.push(
            await measure(`${peer.name} ${kind}`, (w, onProgress) => peer.run(url, w, onProgress)),
          );
        });
      }
      if (ceiling !== undefined && (kind === 'kafka' || kind === 'rabbitmq'))
        await attempt(kind === 'kafka' ? 'ProducerPerformance' : 'PerfTest', async () => {
          const tools = await import('./ceiling.js');
          const why = tools.ceilingUnavailable();
          if (why !== undefined) notes.push(`--ceiling skipped on ${kind}: ${why}`);
          else if (kind === 'kafka') {
            const { kafkaHosts } = await import('./raw-kafkajs.js');
            const topic = `bench-ceiling-${Date.now().toString(36)}`;
            const broker = await connect(url);
            try {
              await broker.ensureTopic(topic, { partitions: workload.partitions });
            } finally {
              await broker.close();
            }
            hooks.onRun?.('ProducerPerformance');
            try {
              const result = await tools.kafkaCeiling(kafkaHosts(url), topic, workload, ceiling.kafkaVersion);
              results.push({ ...result, label: `${result.label}${tag()}` });
            } finally {
              await deleteRunResources({ url, broker: 'kafka', topic, group: '', partitions: 0 });
            }
          } else {
            hooks.onRun?.('PerfTest');
            const result = await tools.rabbitCeiling(url, workload);
            results.push({ ...result, label: `${result.label}${tag()}` });
          }
        });
      const mqkit = results[0]!;
      const rawRun = results.find((r) => r.library.startsWith('raw '));
      const mismatch = rawRun === undefined ? undefined : rawMismatch(workload, kind);
      if (mismatch !== undefined && round === 1) {
        notes.push(`No mqkit/raw ratio on ${kind}: not the same workload, ${mismatch}.`);
      }
      const raw = mismatch === undefined ? rawRun : undefined;
      const top = results.find((r) => r.external === true);
      const ratio =
        raw === undefined
          ? undefined
          : {
              ...ratioOf(kind, mqkit, raw),
              ...(top ? { ceiling: mqkit.produceRate / top.produceRate } : {}),
            };
      // Without a mqkit/raw ratio the ceiling's (a produce figure) goes to the notes.
      if (ratio === undefined && top !== undefined && top.produceRate > 0) {
        notes.push(
          `mqkit produce msg/s over ${top.label} on ${kind}: ${(mqkit.produceRate / top.produceRate).toFixed(2)}.`,
        );
      }
      const vsPeers = results
        .filter((r) => peers.some((p) => p.name === r.library))
        .map((r) => ({
          peer: r.library,
          endToEnd: r.endToEndRate > 0 ? mqkit.endToEndRate / r.endToEndRate : 0,
        }));
      runs.push({
        url: redact(url),
        broker: kind,
        ...(repeat > 1 ? { round } : {}),
        ...(vsPeers.length > 0 ? { vsPeers } : {}),
        ...(version === undefined ? {} : { version }),
        ...(settings === undefined ? {} : { settings }),
        results,
        ...(ratio === undefined ? {} : { ratio }),
      });
    }
  }
  return { workload, environment: env, brokers: runs, notes, failures };
}

/**
 * Why the raw client's run is not the same workload as mqkit's on `broker`, or undefined when
 * it is (then, and only then, a mqkit/raw ratio means something). The raw baselines hand each
 * message to a handler that does no work, one at a time per partition (Kafka) or queue
 * (RabbitMQ, where `order: 'concurrent'` reads one shared queue as mqkit does).
 */
export function rawMismatch(workload: Workload, broker: string): string | undefined {
  const why: string[] = [];
  if (workload.handlerMs > 0) why.push(`the raw handler does no work (--handler-ms ${workload.handlerMs})`);
  if (workload.consumeBatch > 0) {
    why.push(`the raw client has no batch handler (--consume-batch ${workload.consumeBatch})`);
  }
  if (workload.order === 'key') {
    why.push("the raw client keeps partition order, not order 'key' (keys of a partition in parallel)");
  }
  if (workload.order === 'concurrent' && broker === 'kafka') {
    why.push(
      `raw kafkajs handles each partition's messages one at a time, not order 'concurrent' (--concurrency ${workload.concurrency})`,
    );
  }
  return why.length === 0 ? undefined : why.join('; ');
}

export function ratioOf(broker: string, mqkit: BenchResult, raw: BenchResult): Ratio {
  const div = (a: number, b: number) => (b > 0 ? a / b : 0);
  return {
    broker,
    endToEnd: div(mqkit.endToEndRate, raw.endToEndRate),
    produce: div(mqkit.produceRate, raw.produceRate),
    cpu: div(mqkit.cpuUsPerMessage, raw.cpuUsPerMessage),
  };
}

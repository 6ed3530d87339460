import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { run, tail, which } from './exec-utils.js';
import { createRunDir, JvmGroup, type JvmProcess, locateJava, spawnJvm } from './jvm-process.js';
import { type CdsPlan, planCds } from './kafka-cds.js';
import {
  jvmFlags,
  type KafkaSecurity,
  log4j2Properties,
  log4jProperties,
  type NodeSpec,
  scramArgs,
  serverProperties,
} from './kafka-config.js';
import { ensureKafkaJars } from './kafka-jars.js';
import { freePorts, LOOPBACK, parseHostPort, tcpAnswers, waitUntil } from './net-utils.js';

/** Default Kafka version when neither `opts.version` nor `KAFKA_VERSION` is given. */
export const DEFAULT_KAFKA_VERSION = '3.9.1';
const HINT = 'set MQKIT_TEST_KAFKA_URL=host:port to use a running broker';
const RUN_DIR_PREFIX = 'mqkit-kafka-';

/** Options of {@link startKafka}. */
export interface StartKafkaOptions {
  /** Apache Kafka version; defaults to `process.env.KAFKA_VERSION ?? '3.9.1'`. */
  version?: string;
  /** 1 combined node, or 3 combined nodes forming a 3-voter quorum; defaults to 1. */
  brokers?: 1 | 3;
  /** Receives progress lines and the brokers' stdout/stderr; defaults to a no-op. */
  log?: (line: string) => void;
  /** How long to wait for the cluster to serve metadata; defaults to 90 000 ms. */
  readyTimeoutMs?: number;
  /** Adds the TLS and SASL listeners `SSL`, `SASL_SSL` and `WRONGNAME` (see {@link KafkaSecurity}). */
  security?: KafkaSecurity;
  /**
   * Extra client listeners per node (index = node index), each on `port` and advertised as
   * `127.0.0.1:advertisedPort`: put a fault proxy on `advertisedPort` forwarding to `port`, and a
   * client bootstrapped through the proxies gets metadata pointing it through them too
   * (Kafka answers with the addresses of the listener a request came in on). Inter-broker
   * traffic stays on the PLAINTEXT listener. Default: none.
   */
  external?: readonly (readonly { port: number; advertisedPort: number }[])[];
}

/** A running local Kafka cluster started by {@link startKafka}. */
export interface KafkaServer {
  /** Comma-separated `127.0.0.1:port` list of the PLAINTEXT listeners. */
  bootstrap: string;
  /**
   * With `security`: comma-separated `127.0.0.1:port` lists of the `SSL` (mutual TLS),
   * `SASL_SSL` and `WRONGNAME` (TLS, certificate for another name) listeners.
   */
  secure?: { ssl: string; saslSsl: string; wrongName: string };
  /** Milliseconds from the first `java` spawn (storage format) until the cluster served metadata. */
  startupMs: number;
  /** Milliseconds spent making sure the jars are cached (the Maven download on a cold cache). */
  jarsMs: number;
  /** True when the jars came from the cache. */
  jarsCached: boolean;
  /** The Kafka version that runs. */
  version: string;
  /** Temporary directory holding configs, data and `node-<id>/server.log`; removed by `stop()`. */
  runDir: string;
  /** Stops every node (SIGTERM, then SIGKILL after 15 s) and removes `runDir`. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs node `index` (0-based): no clean shutdown, as in a crash. */
  killNode(index?: number): Promise<void>;
  /** Stops node `index` cleanly (SIGTERM, SIGKILL after 15 s); `restartNode` starts it again. */
  stopNode(index?: number): Promise<void>;
  /** Starts node `index` again on its ports and data (killing it first if it runs) and waits until the cluster serves metadata. */
  restartNode(index?: number): Promise<void>;
}

interface RunningNode extends JvmProcess {
  spec: NodeSpec;
}

/** How to run Kafka's JVMs. */
interface Jvm {
  java: string;
  /** `<libs>/*`, expanded by java itself. */
  classpath: string;
  cds: CdsPlan;
}

/**
 * Starts a throw-away Apache Kafka cluster in KRaft mode from Apache's own jars
 * (fetched once from Maven Central into `~/.cache/mqkit`, see `ensureKafkaJars`).
 *
 * Every node is a combined broker+controller listening on free 127.0.0.1 ports;
 * with `brokers: 3` the three nodes form a 3-voter quorum with
 * default.replication.factor=3 and min.insync.replicas=2. Settings are tuned for
 * a 2-core machine (1 partition for internal topics, 2 network/io threads, no
 * initial rebalance delay, heap 256m–1g (512m per node for 3 nodes) unless
 * `KAFKA_HEAP_OPTS` is set). Logs go to `<runDir>/node-<id>/server.log`, not stdout.
 *
 * Resolves once every node accepts TCP connections and the cluster answers
 * `describeCluster` with all brokers plus `listTopics`, and a group coordinator
 * is available (so `__consumer_offsets` exists before the first test). The children are
 * SIGKILLed if the Node process exits (and, via `setpriv --pdeathsig`, if it dies).
 * The first clean stop of a version records a class-data-sharing archive next to
 * the jars that later starts map, about a second faster per JVM (see kafka-cds.ts).
 *
 * Defaults: version `process.env.KAFKA_VERSION ?? '3.9.1'`, 1 broker, no logging, 90 s readiness timeout.
 *
 * @throws Error with a one-line message when java or Maven is missing or Maven
 *   Central cannot be reached; with the server log tail when a node does not come up.
 */
export async function startKafka(opts: StartKafkaOptions = {}): Promise<KafkaServer> {
  const version = opts.version ?? process.env.KAFKA_VERSION ?? DEFAULT_KAFKA_VERSION;
  const brokers = opts.brokers ?? 1;
  const log = opts.log ?? (() => {});
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const major = Number(version.split('.')[0]);

  const { java, versionText } = await findJava(major >= 4 ? 17 : 11);
  const jars = await ensureKafkaJars(version, log);
  const jvm: Jvm = {
    java,
    classpath: join(jars.libsDir, '*'),
    cds: await planCds(jars.libsDir, versionText, log),
  };

  const runDir = await createRunDir(RUN_DIR_PREFIX);
  const security = opts.security;
  const perNode = security === undefined ? 2 : 5;
  const ports = await freePorts(brokers * perNode);
  const specs: NodeSpec[] = Array.from({ length: brokers }, (_, i) => ({
    id: i + 1,
    brokerPort: ports[perNode * i] as number,
    controllerPort: ports[perNode * i + 1] as number,
    dir: join(runDir, `node-${i + 1}`),
    securePorts:
      security === undefined
        ? undefined
        : {
            ssl: ports[perNode * i + 2] as number,
            saslSsl: ports[perNode * i + 3] as number,
            wrongName: ports[perNode * i + 4] as number,
          },
    external: opts.external?.[i],
  }));
  const voters = specs.map((s) => `${s.id}@${LOOPBACK}:${s.controllerPort}`).join(',');
  const bootstrap = specs.map((s) => `${LOOPBACK}:${s.brokerPort}`).join(',');
  for (const spec of specs) {
    await mkdir(join(spec.dir, 'data'), { recursive: true });
    await writeFile(join(spec.dir, 'server.properties'), serverProperties(spec, voters, brokers, security));
    await writeFile(join(spec.dir, 'log4j.properties'), log4jProperties(join(spec.dir, 'server.log')));
    await writeFile(join(spec.dir, 'log4j2.properties'), log4j2Properties(join(spec.dir, 'server.log')));
  }

  const cluster = new JvmGroup<RunningNode>(runDir, {
    graceMs: 15_000,
    afterStop: async ([recorder]) => {
      await jvm.cds.finish(recorder?.exit !== undefined && recorder.exit.signal === null);
    },
    onExitSync: () => jvm.cds.discardSync(),
  });
  const nodes = cluster.procs;
  const stop = (): Promise<void> => cluster.stop();

  let pdeathsig: string | undefined;
  const killNode = async (index = 0): Promise<void> => {
    const node = nodes[index];
    if (node === undefined || node.exit !== undefined) return;
    const exited = new Promise((resolve) => node.child.once('exit', resolve));
    node.child.kill('SIGKILL');
    await exited;
  };
  const stopOneNode = (index = 0): Promise<void> => cluster.stopOne(index);
  const restartNode = async (index = 0): Promise<void> => {
    const spec = specs[index];
    if (spec === undefined || cluster.stopped) throw new Error(`Kafka: no node ${index} to restart`);
    await killNode(index);
    nodes[index] = spawnNode(jvm, spec, brokers, pdeathsig, log);
    await waitReady(nodes, bootstrap, brokers, readyTimeoutMs, log);
  };

  const t0 = Date.now();
  try {
    const clusterId = randomClusterId();
    log(`kafka: ${version}, ${brokers} node(s), cluster id ${clusterId}, run dir ${runDir}`);
    await Promise.all(specs.map((spec) => formatStorage(jvm, spec, clusterId, scramArgs(security))));
    log(`kafka: storage formatted in ${Date.now() - t0} ms`);
    pdeathsig = await which('setpriv');
    for (const spec of specs) {
      nodes.push(spawnNode(jvm, spec, brokers, pdeathsig, log));
    }
    await waitReady(nodes, bootstrap, brokers, readyTimeoutMs, log);
  } catch (err) {
    await stop();
    throw err;
  }
  const startupMs = Date.now() - t0;
  log(`kafka: ready at ${bootstrap} after ${startupMs} ms`);
  const list = (port: (p: NonNullable<NodeSpec['securePorts']>) => number): string =>
    specs.map((s) => (s.securePorts === undefined ? '' : `${LOOPBACK}:${port(s.securePorts)}`)).join(',');
  return {
    bootstrap,
    secure:
      security === undefined
        ? undefined
        : { ssl: list((p) => p.ssl), saslSsl: list((p) => p.saslSsl), wrongName: list((p) => p.wrongName) },
    startupMs,
    jarsMs: jars.ms,
    jarsCached: jars.cached,
    version,
    runDir,
    stop,
    killNode,
    stopNode: stopOneNode,
    restartNode,
  };
}

/** Result of {@link kafkaForTests}. */
export interface KafkaForTests {
  /** Comma-separated host:port list. */
  bootstrap: string;
  /** True when this call started the cluster (then `stop()` stops it). */
  started: boolean;
  /** Start-up time of a started cluster; undefined when reused. */
  startupMs?: number;
  /** The running cluster when started; undefined when reused. */
  server?: KafkaServer;
  stop(): Promise<void>;
}

/**
 * Kafka for a test run: uses `MQKIT_TEST_KAFKA_URL` (`host:port[,host:port]`, an
 * optional `kafka://` prefix is stripped) when set, after checking it accepts
 * TCP connections; otherwise starts a cluster with {@link startKafka}.
 *
 * @param opts - passed to {@link startKafka}; `brokers` defaults to `MQKIT_TEST_KAFKA_BROKERS` (1 or 3), else 1
 */
export async function kafkaForTests(opts: StartKafkaOptions = {}): Promise<KafkaForTests> {
  const env = process.env.MQKIT_TEST_KAFKA_URL;
  if (env && env.trim().length > 0) {
    const bootstrap = env.trim().replace(/^kafka:\/\//, '');
    const first = parseHostPort(bootstrap.split(',')[0] ?? '', 9092);
    if (!(await tcpAnswers(first.host, first.port, 3000))) {
      throw new Error(
        `Kafka: MQKIT_TEST_KAFKA_URL=${env} does not accept connections; start that broker or unset the variable`,
      );
    }
    return { bootstrap, started: false, stop: async () => {} };
  }
  const envBrokers = process.env.MQKIT_TEST_KAFKA_BROKERS === '3' ? 3 : 1;
  const server = await startKafka({ ...opts, brokers: opts.brokers ?? envBrokers });
  return {
    bootstrap: server.bootstrap,
    started: true,
    startupMs: server.startupMs,
    server,
    stop: server.stop,
  };
}

/** A random Kafka cluster id: 16 random bytes, base64url without padding, never starting with '-'. */
export function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

async function findJava(minMajor: number): Promise<{ java: string; versionText: string }> {
  const java = await locateJava();
  if (!java) {
    throw new Error(
      `Kafka: java not found (no JAVA_HOME/bin/java, none on PATH); install a JDK ${minMajor}+ (apt-get install -y openjdk-17-jre-headless) or ${HINT}`,
    );
  }
  const result = await run(java, ['-version'], { timeoutMs: 30_000 });
  const versionText = `${java}\n${result.stderr}${result.stdout}`;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(versionText);
  const feature = m ? (m[1] === '1' ? Number(m[2]) : Number(m[1])) : Number.NaN;
  if (!(feature >= minMajor)) {
    throw new Error(
      `Kafka: ${java} is Java ${Number.isNaN(feature) ? '(unknown version)' : feature}, this Kafka needs Java ${minMajor}+; set JAVA_HOME to a newer JDK or ${HINT}`,
    );
  }
  return { java, versionText };
}

async function formatStorage(
  jvm: Jvm,
  spec: NodeSpec,
  clusterId: string,
  extraArgs: readonly string[] = [],
): Promise<void> {
  const args = [
    // A short-lived tool: favour JVM start-up over peak performance.
    ...jvmFlags(spec, ['-Xmx256m', '-XX:TieredStopAtLevel=1']),
    ...jvm.cds.useFlags,
    '-cp',
    jvm.classpath,
    'kafka.tools.StorageTool',
    'format',
    '-t',
    clusterId,
    '-c',
    join(spec.dir, 'server.properties'),
    ...extraArgs,
  ];
  const result = await run(jvm.java, args, { timeoutMs: 120_000 });
  if (result.code !== 0) {
    throw new Error(
      `Kafka: storage format of node ${spec.id} failed (exit ${result.code})\n${tail(`${result.stdout}\n${result.stderr}\n${readLog(spec)}`)}`,
    );
  }
}

function spawnNode(
  jvm: Jvm,
  spec: NodeSpec,
  brokers: number,
  setpriv: string | undefined,
  log: (line: string) => void,
): RunningNode {
  const envHeap = process.env.KAFKA_HEAP_OPTS?.trim();
  const heap = envHeap ? envHeap.split(/\s+/) : ['-Xms256m', brokers > 1 ? '-Xmx512m' : '-Xmx1g'];
  const javaArgs = [
    ...jvmFlags(spec, heap),
    // Node 1 records the class-data-sharing archive on first use; everyone maps it later.
    ...(spec.id === 1 ? jvm.cds.recordFlags : jvm.cds.useFlags),
    '-cp',
    jvm.classpath,
    'kafka.Kafka',
    join(spec.dir, 'server.properties'),
  ];
  const proc = spawnJvm(jvm.java, javaArgs, { name: `kafka-${spec.id}`, cwd: spec.dir, setpriv, log });
  return Object.assign(proc, { spec });
}

async function waitReady(
  nodes: RunningNode[],
  bootstrap: string,
  brokers: number,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<void> {
  const abort = (): Error | undefined => {
    const dead = nodes.find((n) => n.exit !== undefined);
    if (!dead) return undefined;
    const how = dead.exit?.signal ?? `code ${dead.exit?.code}`;
    return new Error(`Kafka: node ${dead.spec.id} exited early (${how})\n${failureDetails(dead)}`);
  };
  const admin = new Kafka({
    clientId: 'mqkit-infra-ready',
    brokers: bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  }).admin();
  const t0 = Date.now();
  let phase: 'tcp' | 'metadata' | 'coordinator' = 'tcp';
  const next = (to: typeof phase): void => {
    log(`kafka: ${phase} ready after ${Date.now() - t0} ms`);
    phase = to;
  };
  try {
    await waitUntil(
      `Kafka at ${bootstrap}`,
      async () => {
        if (phase === 'tcp') {
          for (const node of nodes) {
            if (!(await tcpAnswers(LOOPBACK, node.spec.brokerPort, 1000))) return false;
          }
          next('metadata');
        }
        if (phase === 'metadata') {
          await admin.connect();
          const cluster = await admin.describeCluster();
          if (cluster.brokers.length < brokers || cluster.controller === null) return false;
          await admin.listTopics();
          next('coordinator');
        }
        // Finding a group coordinator creates __consumer_offsets now rather than in the first test.
        await admin.describeGroups(['mqkit-infra-warmup']);
        log(`kafka: group coordinator ready after ${Date.now() - t0} ms`);
        return true;
      },
      { timeoutMs, intervalMs: 200, abort },
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (message.startsWith('Kafka: node')) throw err;
    const first = nodes[0];
    throw new Error(`${message}${first ? `\n${failureDetails(first)}` : ''}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

function failureDetails(node: RunningNode): string {
  const out =
    node.output.length > 0
      ? `--- node ${node.spec.id} stdout/stderr ---\n${tail(node.output.join('\n'), 20)}\n`
      : '';
  return `${out}--- ${join(node.spec.dir, 'server.log')} (tail) ---\n${tail(readLog(node.spec), 30)}`;
}

function readLog(spec: NodeSpec): string {
  try {
    return readFileSync(join(spec.dir, 'server.log'), 'utf8');
  } catch {
    return '(no server.log)';
  }
}

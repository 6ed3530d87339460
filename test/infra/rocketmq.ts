import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CODE, parseRemotingJson, RemotingClient } from '../../src/adapters/rocketmq/remoting.js';
import { tail, which } from './exec-utils.js';
import { createRunDir, JvmGroup, type JvmProcess, locateJava, spawnJvm } from './jvm-process.js';
import { freePorts, LOOPBACK, parseHostPort, tcpAnswers, waitUntil } from './net-utils.js';
import { ensureRocketMQJars } from './rocketmq-jars.js';

/** The RocketMQ version the test infrastructure starts. */
export const ROCKETMQ_VERSION = '5.3.3';
const HINT = 'set MQKIT_TEST_ROCKETMQ_URL=rocketmq://host:port to use a running proxy';
const RUN_DIR_PREFIX = 'mqkit-rocketmq-';

/** A running namesrv + proxy (broker inside, local mode) started by {@link startRocketMQ}. */
export interface RocketMQServer {
  /** `rocketmq://127.0.0.1:<gRPC port>?namesrv=127.0.0.1:<namesrv port>`. */
  url: string;
  grpcPort: number;
  namesrvPort: number;
  brokerPort: number;
  startupMs: number;
  jarsMs: number;
  jarsCached: boolean;
  runDir: string;
  /** Stops both JVMs (SIGTERM, SIGKILL after 10 s) and removes `runDir`. Idempotent. */
  stop(): Promise<void>;
}

interface Proc extends JvmProcess {
  name: string;
}

/**
 * Starts Apache RocketMQ from its jars (fetched once with Maven, see `ensureRocketMQJars`):
 * a name server, and the 5.x proxy in local mode, which runs the broker in its own JVM and
 * serves gRPC on the proxy port. Everything listens on free 127.0.0.1 ports; `user.home`,
 * `rocketmq.home.dir` and the store live in a temporary run dir (RocketMQ writes its logs under
 * `~/logs/rocketmqlogs` otherwise). Heaps are small (namesrv 128m, proxy+broker 384m) for a
 * 2-core machine.
 *
 * broker.conf notes. Topics are created by the adapter (and the infra self-test) with the
 * broker's remoting admin request UPDATE_AND_CREATE_TOPIC, 12-30 ms each on this machine, where
 * `MQAdminStartup updateTopic` from rocketmq-tools starts a JVM per call (seconds).
 * `autoCreateTopicEnable` stays off: an auto-created topic would get the default queue count
 * and the NORMAL message type (no FIFO, delayed or transactional messages on it), and the proxy
 * caches a "topic not found" answer for a while, so a topic must exist before its first send
 * anyway. `enableMixedMessageType` lets one topic take every message type, as an mqkit topic
 * does. The transaction check-back runs 2 s after a send and every 2 s, so that half-message
 * tests see it quickly (defaults 6 s and 30 s).
 *
 * Resolves once the proxy answers on its gRPC port and the broker registered with namesrv.
 */
export async function startRocketMQ(
  opts: { log?: (line: string) => void; readyTimeoutMs?: number } = {},
): Promise<RocketMQServer> {
  const log = opts.log ?? (() => {});
  const java = await findJava();
  const jars = await ensureRocketMQJars(ROCKETMQ_VERSION, log);
  const runDir = await createRunDir(RUN_DIR_PREFIX);
  // The broker also listens on listenPort - 2 (its fast remoting port) and listenPort + 1 (HA,
  // on every interface): all three must be free.
  const brokerPort = await freeBrokerPort();
  let others: number[];
  do others = await freePorts(3);
  while (others.some((p) => p >= brokerPort - 2 && p <= brokerPort + 1));
  const [namesrvPort, grpcPort, remotingPort] = others as [number, number, number];
  const namesrv = `${LOOPBACK}:${namesrvPort}`;
  await mkdir(join(runDir, 'store'), { recursive: true });
  await writeFile(join(runDir, 'namesrv.properties'), `listenPort=${namesrvPort}\nbindAddress=${LOOPBACK}\n`);
  await writeFile(
    join(runDir, 'broker.conf'),
    `${Object.entries({
      brokerClusterName: 'DefaultCluster',
      brokerName: 'broker-a',
      brokerId: 0,
      brokerIP1: LOOPBACK,
      listenPort: brokerPort,
      // The remoting server and its fast twin (listenPort - 2) bind this address; the HA port
      // (listenPort + 1) and the proxy's gRPC and remoting ports bind every interface (RocketMQ
      // 5.3 has no setting for them).
      bindAddress: LOOPBACK,
      namesrvAddr: namesrv,
      storePathRootDir: join(runDir, 'store'),
      storePathCommitLog: join(runDir, 'store', 'commitlog'),
      autoCreateTopicEnable: false,
      // Topics of every message type (normal, FIFO, delay, transaction): an mqkit topic carries all.
      enableMixedMessageType: true,
      autoCreateSubscriptionGroup: true,
      mappedFileSizeCommitLog: 64 * 1024 * 1024,
      flushDiskType: 'ASYNC_FLUSH',
      fileReservedTime: 1,
      transactionCheckInterval: 2000,
      transactionTimeOut: 2000,
      enablePropertyFilter: true,
      sendMessageThreadPoolNums: 2,
      pullMessageThreadPoolNums: 4,
    })
      .map(([k, v]) => `${k}=${v}`)
      .join('\n')}\n`,
  );
  await writeFile(
    join(runDir, 'proxy.json'),
    JSON.stringify({
      rocketMQClusterName: 'DefaultCluster',
      namesrvAddr: namesrv,
      grpcServerPort: grpcPort,
      remotingListenPort: remotingPort,
      proxyMode: 'local',
      // A long poll lasts at least this long (default 5 s), and a closing subscription waits for
      // the one in flight (see the adapter's transport): 1 s keeps test closes short.
      grpcClientConsumerMinLongPollingTimeoutMillis: 1000,
    }),
  );

  const cluster = new JvmGroup<Proc>(runDir, { graceMs: 10_000 });
  const procs = cluster.procs;
  const stop = (): Promise<void> => cluster.stop();
  const setpriv = await which('setpriv');
  const startJvm = (name: string, flags: string[], main: string, args: string[]): Proc => {
    const javaArgs = [
      ...flags,
      '-XX:+UseG1GC',
      '-Xss512k',
      '-Djava.awt.headless=true',
      `-Duser.home=${runDir}`,
      `-Drocketmq.home.dir=${runDir}`,
      '-cp',
      join(jars.libsDir, '*'),
      main,
      ...args,
    ];
    const proc = Object.assign(
      spawnJvm(java, javaArgs, {
        name: `rocketmq-${name}`,
        cwd: runDir,
        env: { ...process.env, ROCKETMQ_HOME: runDir },
        setpriv,
        log,
      }),
      { name },
    );
    procs.push(proc);
    return proc;
  };

  const t0 = Date.now();
  try {
    log(`rocketmq: ${ROCKETMQ_VERSION}, run dir ${runDir}`);
    // The name server does little after start-up: the C1 compiler alone starts it faster. The
    // proxy and broker keep the full JIT (benchmarks measure through them).
    startJvm(
      'namesrv',
      ['-Xms64m', '-Xmx128m', '-XX:TieredStopAtLevel=1'],
      'org.apache.rocketmq.namesrv.NamesrvStartup',
      ['-c', join(runDir, 'namesrv.properties')],
    );
    // The proxy needs namesrv at start-up; both JVMs load classes meanwhile.
    const abort = (): Error | undefined => {
      const dead = procs.find((p) => p.exit !== undefined);
      if (!dead) return undefined;
      return new Error(
        `RocketMQ: ${dead.name} exited early (${dead.exit?.signal ?? `code ${dead.exit?.code}`})\n${tail(dead.output.join('\n'), 30)}`,
      );
    };
    await waitUntil('RocketMQ namesrv', () => tcpAnswers(LOOPBACK, namesrvPort, 500), {
      timeoutMs: opts.readyTimeoutMs ?? 90_000,
      intervalMs: 100,
      abort,
    });
    startJvm(
      'proxy',
      ['-Xms128m', '-Xmx384m', '-XX:MaxDirectMemorySize=256m'],
      'org.apache.rocketmq.proxy.ProxyStartup',
      ['-pm', 'local', '-bc', join(runDir, 'broker.conf'), '-pc', join(runDir, 'proxy.json')],
    );
    await waitUntil(
      `RocketMQ proxy at ${LOOPBACK}:${grpcPort}`,
      // Listening is not enough: until the broker registered with the name server, routes and
      // topic creation fail.
      async () =>
        (await tcpAnswers(LOOPBACK, grpcPort, 500)) &&
        (await tcpAnswers(LOOPBACK, brokerPort, 500)) &&
        (await brokerRegistered(namesrv, `${LOOPBACK}:${brokerPort}`)),
      { timeoutMs: opts.readyTimeoutMs ?? 90_000, intervalMs: 200, abort },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const startupMs = Date.now() - t0;
  const url = `rocketmq://${LOOPBACK}:${grpcPort}?namesrv=${namesrv}`;
  log(`rocketmq: ready at ${url} after ${startupMs} ms`);
  return {
    url,
    grpcPort,
    namesrvPort,
    brokerPort,
    startupMs,
    jarsMs: jars.ms,
    jarsCached: jars.cached,
    runDir,
    stop,
  };
}

/** Result of {@link rocketmqForTests}. */
export interface RocketMQForTests {
  url: string;
  started: boolean;
  server?: RocketMQServer;
  stop(): Promise<void>;
}

/**
 * RocketMQ for a test run: `MQKIT_TEST_ROCKETMQ_URL` (`rocketmq://host:port[?namesrv=host:port]`)
 * when set, after checking the proxy accepts TCP connections; otherwise {@link startRocketMQ}.
 */
export async function rocketmqForTests(
  opts: { log?: (line: string) => void } = {},
): Promise<RocketMQForTests> {
  const env = process.env.MQKIT_TEST_ROCKETMQ_URL?.trim();
  if (env) {
    const hostPort = env.replace(/^rocketmq:\/\//, '').split(/[/?]/)[0] ?? '';
    const { host, port } = parseHostPort(hostPort, 8081);
    if (!(await tcpAnswers(host, port, 3000))) {
      throw new Error(
        `RocketMQ: MQKIT_TEST_ROCKETMQ_URL=${env} does not accept connections; start that proxy or unset the variable`,
      );
    }
    return { url: env, started: false, stop: async () => {} };
  }
  const server = await startRocketMQ(opts);
  return { url: server.url, started: true, server, stop: server.stop };
}

/** A free port whose neighbours listenPort - 2 and listenPort + 1 are free too. */
async function freeBrokerPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const [port] = (await freePorts(1)) as [number];
    if (port < 1026 || port > 65_534) continue;
    if ((await canListen(port - 2)) && (await canListen(port + 1)) && (await canListen(port))) return port;
  }
  throw new Error('RocketMQ: found no free broker port with free neighbours (port - 2, port + 1)');
}

/** Whether a TCP server can listen on `port` on every interface (HA binds them all). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

/** Whether the name server lists `address` as a master broker (getBrokerClusterInfo). */
async function brokerRegistered(namesrv: string, address: string): Promise<boolean> {
  const client = new RemotingClient(namesrv, 2000);
  try {
    const r = await client.request(CODE.getBrokerClusterInfo);
    if (r.code !== 0) return false;
    const info = parseRemotingJson<{
      brokerAddrTable?: Record<string, { brokerAddrs: Record<string, string> }>;
    }>(r.body);
    return Object.values(info.brokerAddrTable ?? {}).some((b) => b.brokerAddrs['0'] === address);
  } catch {
    return false;
  } finally {
    client.close();
  }
}

async function findJava(): Promise<string> {
  const java = await locateJava();
  if (!java) throw new Error(`RocketMQ: java not found (no JAVA_HOME/bin/java, none on PATH); ${HINT}`);
  return java;
}

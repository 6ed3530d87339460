import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from './ensured-service.js';
import { lineSplitter, oneLine, run, tail } from './exec-utils.js';
import { freePorts, LOOPBACK, tcpAnswers, waitUntil } from './net-utils.js';
import { amqpProblem } from './rabbitmq.js';

/**
 * A RabbitMQ node of the test's own, for what must not be done to the shared broker: killing
 * it, restarting it, raising a resource alarm. It runs Debian's RabbitMQ from its install
 * directory with its own node name, ports, data directory and Erlang cookie, bound to
 * 127.0.0.1, with only the consistent-hash plugin. Start-up takes about 5 s.
 */
export interface PrivateRabbitNode {
  /** `amqp://guest:guest@127.0.0.1:<port>`. */
  readonly url: string;
  /** With the `tls` option: `amqps://guest:guest@127.0.0.1:<port>` of the TLS listener. */
  readonly tlsUrl: string | undefined;
  /**
   * Runs `rabbitmqctl` on the node (e.g. `['list_connections', 'peer_cert_subject']`) and
   * returns its standard output.
   */
  ctl(args: readonly string[]): Promise<string>;
  /** SIGKILLs the node: no clean shutdown, as in a crash or power loss. */
  kill(): Promise<void>;
  /** Stops the node cleanly (`rabbitmqctl shutdown`: connections closed, queues synced to disk); SIGKILL after 60 s. */
  shutdown(): Promise<void>;
  /** Starts it again on the same port and data directory (durable queues and persistent messages recover). */
  start(): Promise<void>;
  /** Raises (`true`) or clears a memory alarm; while raised the broker blocks publishing connections. */
  memoryAlarm(raised: boolean): Promise<void>;
  /** Kills the node and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** A TLS listener of a private node (PEM files; keys unencrypted). */
export interface PrivateRabbitTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  /**
   * Client certificates: 'verify' asks for one and refuses one the CA did not sign, but lets
   * a client without one in (`verify_peer`); 'require' refuses a client without one too
   * (`fail_if_no_peer_cert`). Default 'verify'.
   */
  clientCert?: 'verify' | 'require';
}

const ROOT = join(tmpdir(), 'mqkit-rabbitmq-nodes');
const CANDIDATES = ['/usr/lib/rabbitmq/bin', '/usr/local/lib/rabbitmq/bin'];
const HINT =
  "install Debian's rabbitmq-server package (apt-get install rabbitmq-server); these tests start a private node and kill it, so the shared broker cannot stand in";

/**
 * Starts a private node and waits until it accepts AMQP connections.
 * @throws Error with one line naming what is missing when no RabbitMQ install is found or the node does not come up within 60 s
 */
export async function startPrivateRabbitNode(
  opts: { tls?: PrivateRabbitTls } = {},
): Promise<PrivateRabbitNode> {
  const bin = await rabbitBin();
  await reapOrphans();
  const [port = 0, distPort = 0, tlsPort = 0] = await freePorts(opts.tls === undefined ? 2 : 3);
  const id = randomUUID().slice(0, 8);
  const dir = join(ROOT, id);
  await mkdir(ROOT, { recursive: true });
  await mkdir(dir); // reapOrphans leaves a directory without owner.pid alone
  await writeFile(join(dir, 'owner.pid'), String(process.pid));
  await mkdir(join(dir, 'home'));
  await writeFile(join(dir, 'enabled_plugins'), '[rabbitmq_consistent_hash_exchange].\n');
  if (opts.tls !== undefined) await writeFile(join(dir, 'rabbitmq.conf'), tlsConf(opts.tls, tlsPort));
  // An Erlang short node name: its host part must be a host name, not an address; Node never
  // connects to it (clients use `url`, on 127.0.0.1).
  const nodeName = `mqkit-${id}@localhost`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(dir, 'home'), // its own Erlang cookie
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: LOOPBACK,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
  };
  const url = `amqp://guest:guest@${LOOPBACK}:${port}`;
  const tlsUrl = opts.tls === undefined ? undefined : `amqps://guest:guest@${LOOPBACK}:${tlsPort}`;
  let child: ChildProcess | undefined;
  const output: string[] = [];

  const kill = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running?.pid === undefined) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    try {
      // The start script runs beam.smp as a child: kill the whole process group.
      process.kill(-running.pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    if (running.exitCode === null && running.signalCode === null) await exited;
    // Its port closes with the process; wait for that so a restart can bind it again.
    await waitUntil(
      `RabbitMQ private node ${nodeName} gone after SIGKILL`,
      async () => !(await tcpAnswers(LOOPBACK, port)),
      {
        timeoutMs: 10_000,
        intervalMs: 50,
      },
    );
  };
  const onExit = (): void => {
    try {
      if (child?.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };

  const start = async (): Promise<void> => {
    if (child !== undefined) return;
    const spawned = spawn(join(bin, 'rabbitmq-server'), [], {
      cwd: dir,
      env,
      detached: true, // its own process group, so kill() reaches beam.smp
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = spawned;
    const onLine = lineSplitter((line) => {
      output.push(line);
      if (output.length > 100) output.shift();
    });
    spawned.stdout?.on('data', onLine);
    spawned.stderr?.on('data', onLine);
    spawned.once('error', (error) => output.push(`spawn error: ${error.message}`));
    const waitOptions = {
      timeoutMs: 60_000,
      intervalMs: 100,
      abort: () =>
        spawned.exitCode !== null || spawned.signalCode !== null
          ? new Error(`RabbitMQ private node exited: ${oneLine(tail(output.join('\n'), 5), 300)}; ${HINT}`)
          : undefined,
    };
    await waitUntil(
      `RabbitMQ private node ${nodeName} on port ${port}`,
      async () => (await amqpProblem(url)) === undefined,
      waitOptions,
    );
    // The TLS listener starts separately from the plain one: wait for it too.
    if (opts.tls !== undefined) {
      await waitUntil(
        `RabbitMQ private node ${nodeName} TLS listener on port ${tlsPort}`,
        () => tcpAnswers(LOOPBACK, tlsPort),
        waitOptions,
      );
    }
  };

  const ctl = async (args: readonly string[]): Promise<string> => {
    const result = await run(join(bin, 'rabbitmqctl'), ['-n', nodeName, ...args], { env, timeoutMs: 60_000 });
    if (result.code !== 0)
      throw new Error(`rabbitmqctl ${args.join(' ')}: ${oneLine(result.stderr || result.stdout, 300)}`);
    return result.stdout;
  };

  /** `rabbitmq-diagnostics check_local_alarms` fails while an alarm is in effect. */
  const alarmed = async (): Promise<boolean> => {
    const result = await run(
      join(bin, 'rabbitmq-diagnostics'),
      ['-q', '-n', nodeName, 'check_local_alarms'],
      {
        env,
        timeoutMs: 60_000,
      },
    );
    if (result.notFound || result.timedOut) throw new Error('rabbitmq-diagnostics did not run');
    return result.code !== 0;
  };

  process.once('exit', onExit);
  try {
    await start();
  } catch (error) {
    process.off('exit', onExit);
    await kill().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw new Error(`RabbitMQ private node: ${errorMessage(error)}`);
  }
  const shutdown = async (): Promise<void> => {
    const running = child;
    if (running === undefined) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    const stopped = running.exitCode !== null || running.signalCode !== null;
    const ok = await ctl(['shutdown']).then(
      () => true,
      () => false,
    );
    const timer = setTimeout(() => void kill(), ok ? 60_000 : 0);
    if (!stopped) await exited;
    clearTimeout(timer);
    child = undefined;
    await waitUntil(
      `RabbitMQ private node ${nodeName} gone after shutdown`,
      async () => !(await tcpAnswers(LOOPBACK, port)),
      {
        timeoutMs: 10_000,
        intervalMs: 50,
      },
    );
  };

  let stopped: Promise<void> | undefined;
  return {
    url,
    tlsUrl,
    ctl,
    kill,
    shutdown,
    start,
    memoryAlarm: async (raised) => {
      await ctl(['set_vm_memory_high_watermark', raised ? '0' : '0.4']);
      // The memory monitor raises or clears the alarm on its own schedule: wait for it.
      await waitUntil(
        `RabbitMQ private node ${nodeName}: memory alarm ${raised ? 'raised' : 'cleared'}`,
        async () => (await alarmed()) === raised,
        { timeoutMs: 30_000, intervalMs: 100 },
      );
    },
    stop: () => {
      stopped ??= (async () => {
        process.off('exit', onExit);
        await kill();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** rabbitmq.conf of a node with a TLS listener on 127.0.0.1 beside its plain one. */
function tlsConf(tls: PrivateRabbitTls, port: number): string {
  return `listeners.ssl.default = ${LOOPBACK}:${port}
ssl_options.cacertfile = ${tls.caFile}
ssl_options.certfile = ${tls.certFile}
ssl_options.keyfile = ${tls.keyFile}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = ${tls.clientCert === 'require'}
`;
}

async function rabbitBin(): Promise<string> {
  for (const dir of CANDIDATES) {
    try {
      await access(join(dir, 'rabbitmq-server'));
      return dir;
    } catch {
      // next
    }
  }
  throw new Error(`RabbitMQ private node: no rabbitmq-server under ${CANDIDATES.join(' or ')}; ${HINT}`);
}

/**
 * Kills nodes left by test processes that died without stopping them, and removes their
 * directories. A pid is killed only if its command line names that node: pids get reused.
 */
async function reapOrphans(): Promise<void> {
  const entries = await readdir(ROOT).catch(() => [] as string[]);
  for (const entry of entries) {
    const dir = join(ROOT, entry);
    const owner = Number(await readFile(join(dir, 'owner.pid'), 'utf8').catch(() => 'NaN'));
    if (!Number.isInteger(owner) || alive(owner)) continue; // being set up, or still in use
    const beam = Number(await readFile(join(dir, 'rabbitmq.pid'), 'utf8').catch(() => 'NaN'));
    const cmdline = Number.isInteger(beam)
      ? await readFile(`/proc/${beam}/cmdline`, 'utf8').catch(() => '')
      : '';
    if (cmdline.includes(`mqkit-${entry}@`)) {
      try {
        process.kill(beam, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

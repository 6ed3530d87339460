import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import {
  type EnsuredService,
  type EnsureOptions,
  envUrl,
  errorMessage,
  reused,
  startedService,
  waitUntilAnswering,
} from './ensured-service.js';
import { aptInstall, oneLine, redactUrl, run, tail, which } from './exec-utils.js';
import { LOOPBACK, tcpAnswers } from './net-utils.js';

/** URL of the local broker: Debian's default guest user, which may only log in from loopback. */
export const DEFAULT_AMQP_URL = `amqp://guest:guest@${LOOPBACK}:5672`;
const ENV = 'MQKIT_TEST_AMQP_URL';
const HINT = `set ${ENV}=amqp://user:pass@host:port to use a running broker`;
const PLUGINS = ['rabbitmq_consistent_hash_exchange', 'rabbitmq_management'] as const;
const MANAGEMENT_PORT = 15672;

/**
 * RabbitMQ for tests.
 *
 * 1. `MQKIT_TEST_AMQP_URL` set: used as is (nothing is started or changed), after
 *    checking that an AMQP connection succeeds.
 * 2. Else, if 127.0.0.1:5672 answers: that broker, `amqp://guest:guest@127.0.0.1:5672`.
 * 3. Else: Debian's rabbitmq-server is installed if missing (`apt-get install -y
 *    rabbitmq-server`, root only) and started with `rabbitmq-server -detached`;
 *    `stop()` then shuts it down with `rabbitmqctl shutdown`.
 *
 * For a local broker (2 and 3) the plugins rabbitmq_consistent_hash_exchange and
 * rabbitmq_management are enabled unless they already work. In every case the
 * `x-consistent-hash` exchange type is verified by declaring and deleting a
 * throw-away exchange.
 *
 * Defaults: no logging, 120 s start timeout.
 *
 * @throws Error with a one-line message naming RabbitMQ and `MQKIT_TEST_AMQP_URL`
 */
export async function ensureRabbitMQ(opts: EnsureOptions = {}): Promise<EnsuredService> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.startTimeoutMs ?? 120_000;

  const fromEnv = envUrl(ENV);
  if (fromEnv) {
    const problem = await amqpProblem(fromEnv);
    if (problem)
      throw new Error(
        `RabbitMQ: ${ENV}=${redactUrl(fromEnv)} does not accept AMQP connections (${problem}); start that broker or unset the variable`,
      );
    await verifyConsistentHash(fromEnv, `enable the rabbitmq_consistent_hash_exchange plugin on that broker`);
    return reused(fromEnv);
  }

  if (await tcpAnswers(LOOPBACK, 5672)) {
    await waitForAmqp(
      DEFAULT_AMQP_URL,
      30_000,
      'RabbitMQ on 127.0.0.1:5672 accepts TCP but not AMQP guest/guest logins',
    );
    await ensurePlugins(log, false);
    await verifyConsistentHash(DEFAULT_AMQP_URL, `enable it with rabbitmq-plugins or ${HINT}`);
    return reused(DEFAULT_AMQP_URL);
  }

  let server = await which('rabbitmq-server');
  if (!server) {
    await aptInstall(['rabbitmq-server'], 'RabbitMQ', HINT, log);
    server = await which('rabbitmq-server');
    if (!server) throw new Error(`RabbitMQ: rabbitmq-server still not found after apt-get install; ${HINT}`);
  }
  // The package's post-install script may have started it already.
  if (!(await tcpAnswers(LOOPBACK, 5672))) {
    await ensurePlugins(log, true);
    log('RabbitMQ: starting rabbitmq-server -detached');
    const started = await run(server, ['-detached'], { timeoutMs: 60_000 });
    if (started.code !== 0)
      log(
        `RabbitMQ: rabbitmq-server -detached exited ${started.code}: ${oneLine(started.stderr || started.stdout)}`,
      );
    await waitForAmqp(
      DEFAULT_AMQP_URL,
      timeoutMs,
      `RabbitMQ did not accept AMQP connections on 127.0.0.1:5672 after rabbitmq-server -detached`,
    );
  }
  await ensurePlugins(log, false);
  await verifyConsistentHash(DEFAULT_AMQP_URL, HINT);
  return startedService(DEFAULT_AMQP_URL, async () => {
    const ctl = (await which('rabbitmqctl')) ?? 'rabbitmqctl';
    const result = await run(ctl, ['shutdown'], { timeoutMs: 60_000 });
    if (result.code !== 0) await run(ctl, ['stop'], { timeoutMs: 60_000 });
  });
}

/** Returns undefined when an AMQP connection to `url` succeeds, else why it failed. */
export async function amqpProblem(url: string): Promise<string | undefined> {
  try {
    const conn = await connect(url, { timeout: 3000 });
    conn.on('error', () => {});
    await conn.close();
    return undefined;
  } catch (err) {
    return errorMessage(err) || 'connection refused';
  }
}

function waitForAmqp(url: string, timeoutMs: number, failure: string): Promise<void> {
  return waitUntilAnswering('RabbitMQ', () => amqpProblem(url), {
    timeoutMs,
    intervalMs: 500,
    failure,
    hint: HINT,
  });
}

/**
 * Enables the required plugins on the local node. With `offline`, the node is not
 * running and `--offline` only edits enabled_plugins. Otherwise the slow
 * rabbitmq-plugins calls are skipped when the plugins evidently work already.
 */
async function ensurePlugins(log: (line: string) => void, offline: boolean): Promise<void> {
  const plugins = await which('rabbitmq-plugins');
  if (!plugins) {
    log('RabbitMQ: rabbitmq-plugins not found; not enabling plugins');
    return;
  }
  if (offline) {
    const result = await run(plugins, ['enable', '--offline', ...PLUGINS], { timeoutMs: 60_000 });
    if (result.code !== 0)
      log(`RabbitMQ: rabbitmq-plugins enable --offline failed: ${oneLine(result.stderr || result.stdout)}`);
    return;
  }
  if (
    (await consistentHashProblem(DEFAULT_AMQP_URL)) === undefined &&
    (await tcpAnswers(LOOPBACK, MANAGEMENT_PORT))
  )
    return;
  const listed = await run(plugins, ['list', '-e', '-m'], { timeoutMs: 60_000 });
  const enabled = new Set(listed.stdout.split(/\s+/));
  const missing = PLUGINS.filter((p) => !enabled.has(p));
  if (listed.code === 0 && missing.length === 0) return;
  log(`RabbitMQ: rabbitmq-plugins enable ${PLUGINS.join(' ')}`);
  const result = await run(plugins, ['enable', ...PLUGINS], { timeoutMs: 120_000 });
  if (result.code !== 0) {
    throw new Error(
      `RabbitMQ: rabbitmq-plugins enable ${PLUGINS.join(' ')} failed (exit ${result.code}: ${oneLine(tail(result.stderr || result.stdout, 3), 160)}); ${HINT}`,
    );
  }
}

/** Declares and deletes a throw-away `x-consistent-hash` exchange; returns why it failed, if it did. */
async function consistentHashProblem(url: string): Promise<string | undefined> {
  let conn: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    conn = await connect(url, { timeout: 3000 });
    conn.on('error', () => {});
    const channel = await conn.createChannel();
    channel.on('error', () => {});
    const name = `mqkit.infra.probe.${randomUUID()}`;
    await channel.assertExchange(name, 'x-consistent-hash', { durable: false, autoDelete: false });
    await channel.deleteExchange(name);
    await channel.close();
    return undefined;
  } catch (err) {
    return errorMessage(err);
  } finally {
    await conn?.close().catch(() => {});
  }
}

async function verifyConsistentHash(url: string, hint: string): Promise<void> {
  const problem = await consistentHashProblem(url);
  if (problem) {
    throw new Error(
      `RabbitMQ at ${redactUrl(url)}: the x-consistent-hash exchange type does not work (${oneLine(problem, 120)}); ${hint}`,
    );
  }
}

import { constants } from 'node:fs';
import { access, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  type EnsuredService,
  type EnsureOptions,
  envUrl,
  errorMessage,
  reused,
  startedService,
  waitUntilAnswering,
} from './ensured-service.js';
import { aptInstall, oneLine, redactUrl, run, which } from './exec-utils.js';
import { LOOPBACK, tcpAnswers, waitUntil } from './net-utils.js';

/** URL of the local server. */
export const DEFAULT_REDIS_URL = `redis://${LOOPBACK}:6379`;
const ENV = 'MQKIT_TEST_REDIS_URL';
const HINT = `set ${ENV}=redis://host:port to use a running server`;

/**
 * Redis for tests.
 *
 * 1. `MQKIT_TEST_REDIS_URL` set: used as is, after checking PING works.
 * 2. Else, if 127.0.0.1:6379 answers: `redis://127.0.0.1:6379`.
 * 3. Else: Debian's redis-server (installed with apt-get if missing, root only) is
 *    started daemonized on 127.0.0.1:6379 without persistence (`--save "" --appendonly no`),
 *    with its dir /var/lib/redis and log /var/log/redis/ci.log (a temp dir when those
 *    are not writable); `stop()` sends `SHUTDOWN NOSAVE`.
 *
 * Defaults: no logging, 120 s start timeout.
 *
 * @throws Error with a one-line message naming Redis and `MQKIT_TEST_REDIS_URL`
 */
export async function ensureRedis(opts: EnsureOptions = {}): Promise<EnsuredService> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.startTimeoutMs ?? 120_000;

  const fromEnv = envUrl(ENV);
  if (fromEnv) {
    const problem = await pingProblem(fromEnv);
    if (problem)
      throw new Error(
        `Redis: ${ENV}=${redactUrl(fromEnv)} does not answer PING (${problem}); start that server or unset the variable`,
      );
    return reused(fromEnv);
  }

  if (await tcpAnswers(LOOPBACK, 6379)) {
    await waitForPing(30_000, 'Redis on 127.0.0.1:6379 accepts TCP but does not answer PING');
    return reused(DEFAULT_REDIS_URL);
  }

  let server = await which('redis-server');
  if (!server) {
    await aptInstall(['redis-server'], 'Redis', HINT, log);
    server = await which('redis-server');
    if (!server) throw new Error(`Redis: redis-server still not found after apt-get install; ${HINT}`);
  }
  if (!(await tcpAnswers(LOOPBACK, 6379))) {
    const { dir, logfile } = await redisDirs();
    const args = [
      '--daemonize',
      'yes',
      '--bind',
      LOOPBACK,
      '-::1',
      '--port',
      '6379',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--logfile',
      logfile,
    ];
    log(`Redis: starting redis-server (dir ${dir}, log ${logfile})`);
    const started = await run(server, args, { timeoutMs: 60_000 });
    if (started.code !== 0) {
      throw new Error(
        `Redis: redis-server failed to start (exit ${started.code}: ${oneLine(started.stderr || started.stdout, 160)}, see ${logfile}); ${HINT}`,
      );
    }
    await waitForPing(timeoutMs, `Redis started but does not answer PING on 127.0.0.1:6379 (see ${logfile})`);
  }
  return startedService(DEFAULT_REDIS_URL, async () => {
    const client = newClient(DEFAULT_REDIS_URL);
    try {
      await client.connect();
      await client.shutdown('NOSAVE');
    } catch {
      // SHUTDOWN closes the connection instead of replying.
    } finally {
      client.disconnect();
    }
    await waitUntil('Redis shutdown', async () => !(await tcpAnswers(LOOPBACK, 6379, 500)), {
      timeoutMs: 15_000,
    }).catch(() => {});
  });
}

function newClient(url: string): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  return client;
}

/** Returns undefined when PING answers PONG on `url`, else why it failed. */
async function pingProblem(url: string): Promise<string | undefined> {
  const client = newClient(url);
  let socketError: string | undefined;
  client.on('error', (err: Error) => {
    socketError ??= err.message;
  });
  try {
    await client.connect();
    const pong = await client.ping();
    return pong === 'PONG' ? undefined : `unexpected reply ${pong}`;
  } catch (err) {
    // ioredis rejects with "Connection is closed."; the socket error says why.
    return socketError ?? (errorMessage(err) || 'connection refused');
  } finally {
    client.disconnect();
  }
}

function waitForPing(timeoutMs: number, failure: string): Promise<void> {
  return waitUntilAnswering('Redis', () => pingProblem(DEFAULT_REDIS_URL), {
    timeoutMs,
    intervalMs: 250,
    failure,
    hint: HINT,
  });
}

/** Debian's data and log dirs when writable (creating them if needed), else a temp dir. */
async function redisDirs(): Promise<{ dir: string; logfile: string }> {
  try {
    await mkdir('/var/lib/redis', { recursive: true });
    await mkdir('/var/log/redis', { recursive: true });
    await access('/var/lib/redis', constants.W_OK);
    await access('/var/log/redis', constants.W_OK);
    return { dir: '/var/lib/redis', logfile: '/var/log/redis/ci.log' };
  } catch {
    const dir = await mkdtemp(join(tmpdir(), 'mqkit-redis-'));
    return { dir, logfile: join(dir, 'redis.log') };
  }
}

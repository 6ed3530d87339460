import { readdir } from 'node:fs/promises';
import pg from 'pg';
import {
  type EnsuredService,
  type EnsureOptions,
  envUrl,
  errorMessage,
  reused,
  startedService,
  waitUntilAnswering,
} from './ensured-service.js';
import { oneLine, redactUrl, run, which } from './exec-utils.js';
import { LOOPBACK, tcpAnswers } from './net-utils.js';

/** URL of the local server: user postgres, trust auth on 127.0.0.1, database postgres. */
export const DEFAULT_PG_URL = `postgres://postgres@${LOOPBACK}:5432/postgres`;
const ENV = 'MQKIT_TEST_PG_URL';
const HINT = `set ${ENV}=postgres://user@host:port/db to use a running server`;

/**
 * PostgreSQL for tests.
 *
 * 1. `MQKIT_TEST_PG_URL` set: used as is, after checking `select 1` works.
 * 2. Else, if 127.0.0.1:5432 answers: `postgres://postgres@127.0.0.1:5432/postgres`
 *    (expects trust auth for 127.0.0.1).
 * 3. Else: the Debian cluster `<newest version in /etc/postgresql>/main` is started with
 *    `pg_ctlcluster --skip-systemctl-redirect <version> main start`; `stop()` stops it
 *    again (`-m fast`).
 *
 * Defaults: no logging, 120 s start timeout.
 *
 * @throws Error with a one-line message naming PostgreSQL and `MQKIT_TEST_PG_URL`
 */
export async function ensurePostgres(opts: EnsureOptions = {}): Promise<EnsuredService> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.startTimeoutMs ?? 120_000;

  const fromEnv = envUrl(ENV);
  if (fromEnv) {
    const problem = await selectOneProblem(fromEnv);
    if (problem)
      throw new Error(
        `PostgreSQL: ${ENV}=${redactUrl(fromEnv)} does not answer select 1 (${problem}); start that server or unset the variable`,
      );
    return reused(fromEnv);
  }

  if (await tcpAnswers(LOOPBACK, 5432)) {
    // It may still be starting up ("the database system is starting up").
    await waitForSelectOne(
      30_000,
      'PostgreSQL on 127.0.0.1:5432 accepts TCP but not select 1 as user postgres (trust auth expected)',
    );
    return reused(DEFAULT_PG_URL);
  }

  const ctl = await which('pg_ctlcluster');
  const version = await newestClusterVersion();
  if (!ctl || !version) {
    throw new Error(
      `PostgreSQL: nothing answers on 127.0.0.1:5432 and no Debian cluster to start (${ctl ? 'no /etc/postgresql/<version>/main' : 'pg_ctlcluster not found'}); install postgresql with trust auth for 127.0.0.1 or ${HINT}`,
    );
  }
  log(`PostgreSQL: pg_ctlcluster --skip-systemctl-redirect ${version} main start`);
  const started = await run(ctl, ['--skip-systemctl-redirect', version, 'main', 'start'], {
    timeoutMs: 120_000,
  });
  if (started.code !== 0) {
    throw new Error(
      `PostgreSQL: pg_ctlcluster ${version} main start failed (exit ${started.code}: ${oneLine(started.stderr || started.stdout, 160)}); ${HINT}`,
    );
  }
  await waitForSelectOne(
    timeoutMs,
    `PostgreSQL ${version}/main started but does not answer select 1 on 127.0.0.1:5432`,
  );
  return startedService(DEFAULT_PG_URL, async () => {
    await run(ctl, ['--skip-systemctl-redirect', version, 'main', 'stop', '-m', 'fast'], {
      timeoutMs: 60_000,
    });
  });
}

/** Returns undefined when `select 1` succeeds on `url`, else why it failed. */
async function selectOneProblem(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const result = await client.query<{ one: number }>('select 1 as one');
    return result.rows[0]?.one === 1 ? undefined : 'unexpected result';
  } catch (err) {
    return errorMessage(err) || 'connection refused';
  } finally {
    await client.end().catch(() => {});
  }
}

function waitForSelectOne(timeoutMs: number, failure: string): Promise<void> {
  return waitUntilAnswering('PostgreSQL', () => selectOneProblem(DEFAULT_PG_URL), {
    timeoutMs,
    intervalMs: 500,
    failure,
    hint: HINT,
  });
}

/** Newest version directory under /etc/postgresql that has a `main` cluster, e.g. `15`. */
async function newestClusterVersion(): Promise<string | undefined> {
  try {
    const versions = await readdir('/etc/postgresql');
    const withMain: string[] = [];
    for (const v of versions) {
      if ((await readdir(`/etc/postgresql/${v}`).catch(() => [] as string[])).includes('main'))
        withMain.push(v);
    }
    return withMain.sort((a, b) => Number(b) - Number(a))[0];
  } catch {
    return undefined;
  }
}

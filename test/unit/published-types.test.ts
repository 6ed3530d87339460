import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The published declarations, type-checked the way a strict user project sees them: from
// node_modules/mqkit, with skipLibCheck off and only the packages that project installed.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tsc = join(repo, 'node_modules/typescript/bin/tsc');

interface TscResult {
  code: number;
  output: string;
}

function runTsc(args: string[], cwd: string): Promise<TscResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [tsc, ...args],
      { cwd, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        done({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

let root = '';
let dist = '';

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mqkit-published-types-'));
  dist = join(root, 'dist');
  // Declarations only: a type check never reads the emitted JavaScript.
  const build = await runTsc(
    ['-p', 'tsconfig.build.json', '--outDir', dist, '--emitDeclarationOnly', '--sourceMap', 'false'],
    repo,
  );
  if (build.code !== 0) throw new Error(`building the declarations failed:\n${build.output}`);
}, 180_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Packages the user project has installed: always mqkit's dependency and @types/node. */
const base = ['@standard-schema/spec', '@types/node'];

/**
 * A user project in its own directory: a real copy of mqkit (so that mqkit's declarations
 * resolve their imports from the user's node_modules, not from this repository's), the
 * named packages symlinked from this repository, and `index.ts` as its only source.
 */
function userProject(name: string, packages: string[], source: string): string {
  const dir = join(root, name);
  const modules = join(dir, 'node_modules');
  mkdirSync(join(modules, 'mqkit'), { recursive: true });
  cpSync(join(repo, 'package.json'), join(modules, 'mqkit/package.json'));
  cpSync(dist, join(modules, 'mqkit/dist'), { recursive: true });
  for (const pkg of [...base, ...packages]) {
    mkdirSync(dirname(join(modules, pkg)), { recursive: true });
    symlinkSync(join(repo, 'node_modules', pkg), join(modules, pkg), 'dir');
  }
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `user-${name}`, private: true, type: 'module' }),
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        skipLibCheck: false,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2022'],
        noEmit: true,
      },
      files: ['index.ts'],
    }),
  );
  writeFileSync(join(dir, 'index.ts'), source);
  return dir;
}

async function expectCompiles(dir: string): Promise<void> {
  const result = await runTsc(['-p', '.'], dir);
  if (result.code !== 0) console.error(`tsc in ${dir} exited ${result.code}:\n${result.output}`);
  expect(result.output).toBe('');
  expect(result.code).toBe(0);
}

const core = `
import { connect, defineTopic, isMqError, registerAdapter, type Delivery, type Handler } from 'mqkit';
import type { AdapterContext, AdapterFactory, Logger } from 'mqkit';
import { createMemoryBroker, testDelivery, waitFor } from 'mqkit/testing';
import {
  idempotent,
  MemoryIdempotencyStore,
  type IdempotencyStore,
  type TransactionalOptions,
} from 'mqkit/patterns';

export interface Order { id: string; total: number }
export const orders = defineTopic<Order>('orders');
export const store: IdempotencyStore = new MemoryIdempotencyStore();
export const handler: Handler<Order> = idempotent(async (d: Delivery<Order>) => {
  if (d.body.total < 0) throw new Error('negative');
}, { store });
export async function smoke(): Promise<void> {
  const broker = await createMemoryBroker(new URL('memory://'));
  const other = await connect('memory://');
  await handler(testDelivery<Order>({ body: { id: 'o1', total: 1 } }));
  await waitFor(() => true);
  await Promise.all([broker.close(), other.close()]);
}
export const failed = (e: unknown): boolean => isMqError(e);
export type Options = TransactionalOptions<Order>;
// Adapter options are typed from the root declarations, with no client library installed.
export async function typed(): Promise<void> {
  const b = await connect('amqp://127.0.0.1', { rabbitmq: { prefetch: 8 }, kafka: { clientId: 'c' } });
  await b.producer().sendBatch([{ topic: orders, body: { id: 'o1', total: 1 } }, { topic: 'raw', body: 1 }]);
}
// A logger and a third-party adapter are written against the root's exported types.
export const logger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
export const factory: AdapterFactory = async (url, _options, context: AdapterContext) => {
  context.logger.info({ url: url.href }, 'connecting');
  return connect('memory://', { logger: context.logger });
};
registerAdapter('custom:', factory);
`;

describe('published declarations in a strict user project', () => {
  it('compile without any optional peer installed', async () => {
    await expectCompiles(userProject('no-peers', [], core));
  }, 120_000);

  it('compile with pg and ioredis installed, and accept their clients with no cast', async () => {
    const source = `${core}
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  createOutbox,
  ensureLedger,
  ensureOutbox,
  halfMessages,
  RedisIdempotencyStore,
  startOutboxRelay,
  transactional,
  type HalfMessageState,
  type PgPoolLike,
  type RedisLike,
} from 'mqkit/patterns';

const pool = new pg.Pool();
const redis = new Redis();
export const asPool: PgPoolLike = pool;
export const asRedis: RedisLike = redis;
export const redisStore: IdempotencyStore = new RedisIdempotencyStore(redis, 'app:idem:');
export const ready: Promise<void> = ensureLedger(pool);
// The handler keeps pg's own client type: typed rows, and handlers written against pg.PoolClient.
export const viaPg: Handler<Order> = transactional(
  async (d, tx) => {
    const { rows } = await tx.query<{ n: number }>('SELECT 1 AS n WHERE $1 <> \\'\\'', [d.id]);
    const n: number | undefined = rows[0]?.n;
    await tx.query({ text: 'INSERT INTO effects (k, n) VALUES ($1, $2)', values: [d.id, n ?? 0] });
  },
  { pool, table: 'app_processed' },
);
async function annotated(d: Delivery<Order>, tx: pg.PoolClient): Promise<void> {
  await tx.query('INSERT INTO effects (k) VALUES ($1)', [d.id]);
}
export const viaAnnotated: Handler<Order> = transactional(annotated, { pool });
// The outbox and half messages take a pg.Pool and a pg.PoolClient in a transaction as they are.
export async function outboxed(): Promise<void> {
  await ensureOutbox(pool);
  const tx = await pool.connect();
  const id: string = await createOutbox().add(tx, { topic: orders, key: 'o1', body: { id: 'o1', total: 1 } });
  tx.release();
  const b = await connect('memory://');
  const relay = await startOutboxRelay({ pool, producer: b.producer() });
  const half = await halfMessages({
    pool,
    producer: b.producer(),
    group: 'orders',
    checkLocalTransaction: () => 'commit',
  });
  const sent = await half.sendInTransaction({ topic: orders, body: { id, total: 1 } }, (m) =>
    m.body.total > 0 ? 'commit' : 'rollback',
  );
  const state: HalfMessageState = sent.state;
  void state;
  await Promise.all([relay.close(), half.close()]);
}
`;
    await expectCompiles(userProject('pg-ioredis', ['pg', '@types/pg', 'ioredis'], source));
  }, 120_000);

  it('compile mqkit/di with inversify and reflect-metadata installed', async () => {
    const source = `${core}
import 'reflect-metadata';
import { Container } from 'inversify';
import type { Producer } from 'mqkit';
import { MQ_PRODUCER, mqkitModule } from 'mqkit/di';

export async function wire(): Promise<Producer> {
  const container = new Container();
  await container.load(mqkitModule({ url: 'memory://' }));
  return container.getAsync(MQ_PRODUCER);
}
`;
    await expectCompiles(userProject('di', ['inversify', 'reflect-metadata'], source));
  }, 120_000);
});

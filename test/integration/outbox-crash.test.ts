import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, type Delivery } from '../../src/index.js';
import {
  createOutbox,
  idempotent,
  MemoryIdempotencyStore,
  startOutboxRelay,
} from '../../src/patterns/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';
import { dropOutboxTables, freshOutboxTable } from './outbox-helpers.js';

let pool: pg.Pool;

beforeAll(() => {
  pool = new pg.Pool({ connectionString: inject('pgUrl'), max: 8 });
});

afterAll(async () => {
  if (pool !== undefined) await dropOutboxTables(pool);
  await pool?.end();
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Starts a relay in a child process whose producer, once a `sendBatch` was acknowledged, says
 * so and never returns: the relay is stopped between publishing and marking. Resolves when the
 * first batch was acknowledged, with a function that kills the child with SIGKILL.
 */
function relayStuckAfterPublish(
  brokerUrl: string,
  table: string,
): Promise<{ kill: () => Promise<void>; stderr: () => string }> {
  const script = `
    import pg from 'pg';
    import { connect } from './src/index.ts';
    import { startOutboxRelay } from './src/patterns/index.ts';
    const pool = new pg.Pool({ connectionString: ${JSON.stringify(inject('pgUrl'))} });
    const broker = await connect(${JSON.stringify(brokerUrl)});
    const inner = broker.producer();
    const producer = {
      send: (m) => inner.send(m),
      sendOneWay: (m) => inner.sendOneWay(m),
      close: () => inner.close(),
      sendBatch: async (m) => {
        await inner.sendBatch(m);
        process.stdout.write('PUBLISHED ' + m.length + '\\n');
        await new Promise(() => {});
      },
    };
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    await startOutboxRelay({ pool, producer, table: ${JSON.stringify(table)}, batchSize: 50, logger: quiet });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child relay published nothing in 60 s: ${stderr.slice(-500)}`));
    }, 60_000);
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (!stdout.includes('PUBLISHED')) return;
      clearTimeout(timer);
      resolve({
        kill: async () => {
          child.kill('SIGKILL');
          await exited;
        },
        stderr: () => stderr,
      });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`the child relay exited (${code ?? signal}) before publishing: ${stderr.slice(-500)}`),
      );
    });
  });
}

const brokers = [
  ['kafka', () => inject('kafkaUrl')],
  ['rabbitmq', () => inject('amqpUrl')],
] as const;

describe.each(brokers)('outbox relay killed between publish and mark, on %s', (_kind, url) => {
  it('loses nothing, and an idempotent consumer applies each message once', async () => {
    const broker = await connect(url());
    const table = await freshOutboxTable(pool, 8);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-crash');
    await broker.ensureTopic(topic, { partitions: 2 });
    const effects = new Map<string, number>();
    let duplicates = 0;
    const store = new MemoryIdempotencyStore();
    const sub = await broker.subscribe(
      { topic, group: uniqueName('g'), order: 'key' },
      idempotent(
        (d: Delivery<{ n: number }>) => {
          effects.set(d.id, (effects.get(d.id) ?? 0) + 1);
        },
        { store, onDuplicate: () => duplicates++ },
      ),
    );
    const count = 200;
    const tx = await pool.connect();
    let ids: string[];
    try {
      await tx.query('BEGIN');
      ids = await outbox.addBatch(
        tx,
        Array.from({ length: count }, (_, n) => ({ topic, key: `k${n % 10}`, body: { n } })),
      );
      await tx.query('COMMIT');
    } finally {
      tx.release();
    }
    const child = await relayStuckAfterPublish(url(), table);
    await child.kill();
    // The child published a batch and died before marking it: every row is still there.
    const left = await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE status = 'pending'`);
    expect(left.rows[0].n).toBe(count);
    const producer = broker.producer();
    const relay = await startOutboxRelay({
      pool,
      producer,
      table,
      pollMs: 100,
      rebalanceMs: 100,
      logger: quiet,
    });
    await waitFor(() => ids.every((id) => effects.has(id)), {
      timeoutMs: 60_000,
      message: () => `${effects.size} of ${count} applied`,
    });
    // The batch the child published arrives twice: the second copies are absorbed.
    await waitFor(() => duplicates >= 50, {
      timeoutMs: 60_000,
      message: () => `${duplicates} duplicates absorbed`,
    });
    expect([...effects.values()].every((n) => n === 1)).toBe(true);
    expect(effects.size).toBe(count);
    await waitFor(async () => (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n === 0);
    await relay.close();
    await sub.close();
    await broker.close();
  }, 120_000);
});

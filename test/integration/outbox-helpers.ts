import type pg from 'pg';
import { ensureOutbox } from '../../src/patterns/index.js';

/** A logger that drops everything: the tests assert on events. */
export const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };

const made: string[] = [];

/** A fresh outbox table for one test; `dropOutboxTables` drops it. */
export async function freshOutboxTable(pool: pg.Pool, slots?: number): Promise<string> {
  const table = `ob_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  made.push(table);
  await ensureOutbox(pool, { table, slots });
  return table;
}

/** Drops the outbox tables (and their trigger functions) this file made. Call it in afterAll. */
export async function dropOutboxTables(pool: pg.Pool): Promise<void> {
  for (const table of made.splice(0)) {
    await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_meta, ${table}_relays`);
    await pool.query(`DROP FUNCTION IF EXISTS ${table}_notify()`);
  }
}

/** Runs `work` in a transaction on its own connection, then commits (or rolls back). */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (tx: pg.PoolClient) => Promise<T>,
  end: 'COMMIT' | 'ROLLBACK' = 'COMMIT',
): Promise<T> {
  const tx = await pool.connect();
  try {
    await tx.query('BEGIN');
    const result = await work(tx);
    await tx.query(end);
    return result;
  } catch (error) {
    await tx.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
}

import type { Pool, PoolClient } from 'pg';
import { ConfigError } from '../../core/errors.js';
import type { Delivery, Handler } from '../../core/message.js';
import { refuseUnknownKeys } from '../../core/options.js';

export interface TransactionalOptions<T> {
  pool: Pool;
  /** Ledger table; created by `ensureLedger`. Default 'mqkit_processed'. */
  table?: string;
  /** The de-duplication key. Default: the message id. */
  key?: (delivery: Delivery<T>) => string;
  onDuplicate?: (delivery: Delivery<T>) => void;
}

/** A handler that does its writes on the transaction it is given. */
export type TransactionalHandler<T> = (delivery: Delivery<T>, tx: PoolClient) => Promise<void>;

const TABLE = /^[a-z_][a-z0-9_]{0,62}$/;

function table(name: string | undefined): string {
  const t = name ?? 'mqkit_processed';
  if (!TABLE.test(t)) throw new ConfigError('transactional.table', 'must be a lower-case SQL identifier');
  return t;
}

/** Creates the ledger table if missing. Run once at start-up (or put it in your migrations). */
export async function ensureLedger(pool: Pool, tableName?: string): Promise<void> {
  await pool.query(
    `CREATE TABLE IF NOT EXISTS ${table(tableName)} (key text PRIMARY KEY, processed_at timestamptz NOT NULL DEFAULT now())`,
  );
}

/**
 * The "strong" check (the seed's ledger table): the ledger row is inserted in the same
 * transaction as the handler's own writes, and the handler receives that transaction, so an
 * effect and its record commit or roll back together. Exactly-once effects in PostgreSQL on
 * top of at-least-once delivery.
 *
 * Two deliveries of one message at once: the second INSERT waits on the first's row lock, then
 * finds the row (duplicate, acknowledged) or, if the first rolled back, proceeds. A crash before
 * COMMIT rolls everything back and a later delivery does the work. If PostgreSQL is unreachable
 * the handler does not run and the error propagates, so the message is not acknowledged.
 * Effects outside PostgreSQL (HTTP calls, other stores) are not covered.
 */
export function transactional<T>(
  handler: TransactionalHandler<T>,
  options: TransactionalOptions<T>,
): Handler<T> {
  refuseUnknownKeys(options, ['pool', 'table', 'key', 'onDuplicate'], 'transactional.');
  const insert = `INSERT INTO ${table(options.table)} (key) VALUES ($1) ON CONFLICT DO NOTHING`;
  const key = options.key ?? ((d: Delivery<T>) => d.id);
  return async (delivery) => {
    const tx = await options.pool.connect();
    let broken = false;
    try {
      await tx.query('BEGIN');
      const inserted = await tx.query(insert, [key(delivery)]);
      if (inserted.rowCount === 0) {
        await tx.query('ROLLBACK');
        options.onDuplicate?.(delivery);
        return;
      }
      await handler(delivery, tx);
      // A statement that failed inside the handler (and was caught there) aborted the
      // transaction: PostgreSQL then answers COMMIT with ROLLBACK, and nothing was written.
      const commit = await tx.query('COMMIT');
      if (commit.command !== 'COMMIT') {
        throw new Error('the handler’s transaction was rolled back: a statement in it failed');
      }
    } catch (error) {
      await tx.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      tx.release(broken);
    }
  };
}

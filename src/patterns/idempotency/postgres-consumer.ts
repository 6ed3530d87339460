import { ConfigError } from '../../core/errors.js';
import type { Delivery, Handler } from '../../core/message.js';
import { refuseUnknownKeys } from '../../core/options.js';
import { inPooledTransaction } from '../pooled-transaction.js';
import { resolveWithoutId, skipsDeduplication } from './without-id.js';

// pg is an optional peer: these declarations describe what mqkit calls instead of importing
// pg's types, so that users without pg can type-check mqkit/patterns.

/** A query result, as far as `transactional` reads one. pg's `QueryResult` satisfies it. */
export interface PgResultLike {
  /** The command tag: 'INSERT', 'COMMIT', or 'ROLLBACK' for a COMMIT of a failed transaction. */
  command: string;
  rowCount: number | null;
}

/**
 * One connection taken from a pool, as far as `transactional` uses it. A `pg.PoolClient`
 * (what `pg.Pool#connect()` resolves to) satisfies it.
 */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<PgResultLike>;
  /** Gives the connection back to its pool; `true` destroys it instead. */
  release(destroy?: boolean): void;
}

/**
 * A PostgreSQL connection pool, as far as mqkit uses one. A `pg.Pool` satisfies it with no
 * cast, as does any pool whose `connect()` resolves to a {@link PgClientLike}.
 */
export interface PgPoolLike {
  connect(): Promise<PgClientLike>;
  query(text: string): Promise<unknown>;
}

/**
 * The client type a pool's `connect()` resolves to: `pg.PoolClient` for a `pg.Pool`. It is
 * what a {@link TransactionalHandler} receives, so handlers keep the full API of the user's
 * driver (typed rows, query configs) rather than the subset mqkit needs.
 */
export type PgClientOf<P extends PgPoolLike> = P extends {
  connect(): Promise<infer C extends PgClientLike>;
  // pg.Pool declares connect() twice, the callback form last; against a single signature the
  // inference would read that one and find no client, so the pattern names both.
  connect(callback: never): void;
}
  ? C
  : PgClientLike;

/** Options of {@link transactional}; `P` is the pool's own type, e.g. `pg.Pool`. */
export interface TransactionalOptions<T, P extends PgPoolLike = PgPoolLike> {
  pool: P;
  /** Ledger table; created by `ensureLedger`. Default 'mqkit_processed'. */
  table?: string;
  /** The de-duplication key. Default: the message id (see `withoutId`). */
  key?: (delivery: Delivery<T>) => string;
  /**
   * Without `key`, a delivery whose id is unique to it (`idOrigin: 'delivery'`): 'handle'
   * (default) runs the handler in its transaction with no ledger row; 'reject' throws a
   * `ConfigError`. As `idempotent({ withoutId })`.
   */
  withoutId?: 'handle' | 'reject';
  onDuplicate?: (delivery: Delivery<T>) => void;
}

/**
 * A handler that does its writes on the transaction it is given. `C` is the pool's client
 * type (`pg.PoolClient` for a `pg.Pool`; see {@link PgClientOf}); annotate it when declaring
 * a handler apart from its `transactional` call: `TransactionalHandler<Order, pg.PoolClient>`.
 */
export type TransactionalHandler<T, C extends PgClientLike = PgClientLike> = (
  delivery: Delivery<T>,
  tx: C,
) => Promise<void>;

const TABLE = /^[a-z_][a-z0-9_]{0,62}$/;

function table(name: string | undefined): string {
  const t = name ?? 'mqkit_processed';
  if (!TABLE.test(t)) throw new ConfigError('transactional.table', 'must be a lower-case SQL identifier');
  return t;
}

/** Creates the ledger table if missing. Run once at start-up (or put it in your migrations). */
export async function ensureLedger(pool: PgPoolLike, tableName?: string): Promise<void> {
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
export function transactional<T, P extends PgPoolLike = PgPoolLike>(
  handler: TransactionalHandler<T, PgClientOf<P>>,
  options: TransactionalOptions<T, P>,
): Handler<T> {
  refuseUnknownKeys(options, ['pool', 'table', 'key', 'withoutId', 'onDuplicate'], 'transactional.');
  const insert = `INSERT INTO ${table(options.table)} (key) VALUES ($1) ON CONFLICT DO NOTHING`;
  const key = options.key ?? ((d: Delivery<T>) => d.id);
  const withoutId = resolveWithoutId(options.withoutId, 'transactional.withoutId');
  return async (delivery) => {
    const record = !skipsDeduplication(
      delivery,
      options.key !== undefined,
      withoutId,
      'transactional.withoutId',
    );
    // What connect() resolves to is PgClientOf<P> by definition; TypeScript cannot evaluate
    // the conditional type for a generic P.
    await inPooledTransaction((await options.pool.connect()) as PgClientOf<P>, async (tx) => {
      const inserted = record ? await tx.query(insert, [key(delivery)]) : undefined;
      if (inserted?.rowCount === 0) {
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
    });
  };
}

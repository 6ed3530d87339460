import { ConfigError } from '../../core/errors.js';
import { intOption, refuseUnknownKeys } from '../../core/options.js';
import type { PgClientLike, PgResultLike } from '../idempotency/postgres-consumer.js';
import { inPooledTransaction } from '../pooled-transaction.js';

// pg is an optional peer: as in the idempotency pattern, these describe what mqkit calls.

/** A query result with its rows. pg's `QueryResult` satisfies it. */
export interface PgRowsResultLike extends PgResultLike {
  // biome-ignore lint/suspicious/noExplicitAny: rows are whatever the driver parsed; each query's reader checks its columns.
  rows: any[];
}

/**
 * Something to run a query on: a `pg.PoolClient` inside the caller's transaction, a
 * `pg.Client`, or a `pg.Pool`.
 */
export interface PgQueryableLike {
  query(text: string, values?: unknown[]): Promise<PgRowsResultLike>;
}

/** A pooled connection that can also LISTEN (a `pg.PoolClient`). */
export interface PgListenClientLike extends PgClientLike, PgQueryableLike {
  query(text: string, values?: unknown[]): Promise<PgRowsResultLike>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** A pool, as the outbox relay and the half-message checker use one. A `pg.Pool` satisfies it. */
export interface OutboxPoolLike extends PgQueryableLike {
  connect(): Promise<PgListenClientLike>;
}

const TABLE = /^[a-z_][a-z0-9_]{0,40}$/;

/** Validates an outbox table name: a lower-case SQL identifier of at most 41 characters (suffixes are added). */
export function outboxTable(name: unknown, field: string): string {
  if (name === undefined) return 'mqkit_outbox';
  if (typeof name !== 'string' || !TABLE.test(name)) {
    throw new ConfigError(field, 'must be a lower-case SQL identifier of at most 41 characters');
  }
  return name;
}

/** The LISTEN/NOTIFY channel of an outbox table. */
export const channelOf = (table: string): string => `${table}_new`;

/** Default number of key slots; see `ensureOutbox`. */
export const DEFAULT_SLOTS = 64;

export interface EnsureOutboxOptions {
  /** Table name (lower-case SQL identifier, at most 41 characters). Default 'mqkit_outbox'. */
  table?: string;
  /**
   * Key slots, 1 to 4096. Default 64. A row's slot is a hash of its key (of its id when it has
   * none) modulo this count, computed by PostgreSQL (a generated column); relays divide the
   * slots between them and one relay at a time publishes a slot (see `OutboxRelay`). Fixed
   * when the table is created: an existing table keeps its count.
   */
  slots?: number;
  /**
   * Whether an insert sends a NOTIFY (a statement trigger) that wakes relays at once. Default
   * true. Its cost: PostgreSQL serialises the commits of all transactions that sent a NOTIFY
   * (a global lock taken while the notification is queued at commit), which can cap the
   * write throughput of a busy database. false: no trigger (an existing one is dropped) and
   * relays find rows by polling alone (`pollMs`; give them `listen: false`), trading
   * commit-to-delivery latency for write throughput.
   */
  notify?: boolean;
}

/**
 * The migration, as SQL statements, for teams that run their own migrations. `ensureOutbox`
 * runs the same statements (each is idempotent).
 *
 * Rows: `status` is 'pending' (to publish), 'sent' (kept for `retainSentMs`), 'parked' (failed
 * `maxAttempts` times, or for `parkAfterMs`), and for half messages 'prepared', 'rolled_back' and 'unresolved' (out
 * of checks). `txid` is the writing transaction's id, which the relay compares against the
 * oldest running transaction so that a row committed late is never skipped.
 */
export function outboxMigration(options: EnsureOutboxOptions = {}): string[] {
  refuseUnknownKeys(options, ['table', 'slots', 'notify'], 'ensureOutbox.');
  const t = outboxTable(options.table, 'ensureOutbox.table');
  const slots = intOption(options.slots, 'ensureOutbox.slots', 1, DEFAULT_SLOTS, 4096);
  if (options.notify !== undefined && typeof options.notify !== 'boolean') {
    throw new ConfigError('ensureOutbox.notify', 'must be a boolean');
  }
  const trigger = `SELECT 1 FROM pg_trigger WHERE tgname = '${t}_notify' AND tgrelid = '${t}'::regclass`;
  const notify =
    options.notify === false
      ? [
          // Dropped only when present: a start-up does not take the table's lock for nothing.
          `DO $$ BEGIN
  IF EXISTS (${trigger}) THEN DROP TRIGGER ${t}_notify ON ${t}; END IF;
END $$`,
        ]
      : [
          // One NOTIFY per inserting statement, delivered at commit (none on rollback): wakes relays.
          `CREATE OR REPLACE FUNCTION ${t}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('${channelOf(t)}', ''); RETURN NULL; END $$`,
          `DO $$ BEGIN
  IF NOT EXISTS (${trigger}) THEN
    CREATE TRIGGER ${t}_notify AFTER INSERT ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${t}_notify();
  END IF;
END $$`,
        ];
  return [
    `CREATE TABLE IF NOT EXISTS ${t} (
  seq bigserial PRIMARY KEY,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  id text NOT NULL,
  topic text NOT NULL,
  key text,
  slot integer GENERATED ALWAYS AS ((hashtext(coalesce(key, id)) & 2147483647) % ${slots}) STORED,
  tag text,
  headers jsonb NOT NULL DEFAULT '{}',
  traceparent text,
  content_type text NOT NULL,
  payload bytea NOT NULL,
  delay_ms integer NOT NULL DEFAULT 0,
  status text NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  failing_since timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  check_group text,
  checks integer NOT NULL DEFAULT 0,
  check_at timestamptz
)`,
    // Tables made before failing_since existed get it; checked first, so that a start-up does
    // not take the table's exclusive lock when there is nothing to add.
    `DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '${t}'::regclass
                 AND attname = 'failing_since' AND NOT attisdropped) THEN
    ALTER TABLE ${t} ADD COLUMN failing_since timestamptz;
  END IF;
END $$`,
    `CREATE TABLE IF NOT EXISTS ${t}_meta (slots integer NOT NULL)`,
    `INSERT INTO ${t}_meta (slots) SELECT ${slots} WHERE NOT EXISTS (SELECT 1 FROM ${t}_meta)`,
    `CREATE TABLE IF NOT EXISTS ${t}_relays (relay_id text PRIMARY KEY, seen_at timestamptz NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS ${t}_pending ON ${t} (seq) WHERE status = 'pending'`,
    `CREATE INDEX IF NOT EXISTS ${t}_retrying ON ${t} (key) WHERE status = 'pending' AND attempts > 0`,
    `CREATE INDEX IF NOT EXISTS ${t}_id ON ${t} (id)`,
    `CREATE INDEX IF NOT EXISTS ${t}_parked ON ${t} (seq) WHERE status IN ('parked', 'unresolved')`,
    `CREATE INDEX IF NOT EXISTS ${t}_sent ON ${t} (sent_at) WHERE status = 'sent'`,
    `CREATE INDEX IF NOT EXISTS ${t}_prepared ON ${t} (check_group, check_at) WHERE status = 'prepared'`,
    `CREATE INDEX IF NOT EXISTS ${t}_rolled_back ON ${t} (check_group, created_at) WHERE status = 'rolled_back'`,
    ...notify,
  ];
}

/**
 * Creates the outbox table (and its small `_meta` and `_relays` companions) if missing. Run it
 * once at start-up, or put {@link outboxMigration}'s statements in your migrations. Concurrent
 * first runs are serialised with an advisory lock.
 */
export async function ensureOutbox(pool: OutboxPoolLike, options: EnsureOutboxOptions = {}): Promise<void> {
  const statements = outboxMigration(options);
  await inPooledTransaction(await pool.connect(), async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
      `mqkit-outbox-migration:${outboxTable(options.table, 'ensureOutbox.table')}`,
    ]);
    for (const sql of statements) await client.query(sql);
    await client.query('COMMIT');
  });
}

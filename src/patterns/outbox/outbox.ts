import { ConfigError } from '../../core/errors.js';
import type { Headers, OutgoingMessage } from '../../core/message.js';
import { intOption, refuseUnknownKeys } from '../../core/options.js';
import { encodeMessage } from '../../core/wire.js';
import { channelOf, outboxTable, type PgQueryableLike } from './schema.js';

/** Options of {@link createOutbox}. */
export interface OutboxOptions {
  /** The table `ensureOutbox` created. Default 'mqkit_outbox'. */
  table?: string;
}

/**
 * A row that failed `maxAttempts` times or for `parkAfterMs` (or a half message out of checks),
 * as listed by `parked`; with `failing: true`, also a row still being retried.
 */
export interface ParkedRow {
  /** The message id, fixed when the row was added. */
  id: string;
  topic: string;
  key: string | undefined;
  /**
   * 'parked': publishing failed; 'unresolved': a half message whose checks ran out; 'pending'
   * (listed with `failing: true` only): failed `attempts` times and still retried, holding
   * back the later rows of its key.
   */
  status: 'parked' | 'unresolved' | 'pending';
  attempts: number;
  /** Checks made (half messages). */
  checks: number;
  lastError: string | undefined;
  createdAt: Date;
}

/**
 * Writes messages into the outbox table inside the caller's own transaction. Safe to share;
 * holds no connection of its own.
 */
export interface Outbox {
  readonly table: string;
  /**
   * Inserts one message on `tx`, a connection inside the caller's transaction (after `BEGIN`):
   * it commits or rolls back with the business change. Resolves with the message id, fixed
   * now (the message's own `id`, else a new UUIDv7): a relay that publishes the row twice
   * (after a crash between publishing and marking) sends that id both times, so an
   * `idempotent()` consumer applies it once. Validates and encodes like `Producer.send`
   * (a bad message throws `ConfigError` or `DecodeError` here, not in the relay). A
   * `traceparent` header is stored in its own column as well and travels on with the message.
   */
  add<T>(tx: PgQueryableLike, message: OutgoingMessage<T>): Promise<string>;
  /** As `add`, for many messages in one statement; resolves with their ids, in order. */
  addBatch(tx: PgQueryableLike, messages: readonly OutgoingMessage<unknown>[]): Promise<string[]>;
  /**
   * Parked rows (and unresolved half messages), oldest first. Default limit 100. `failing:
   * true` adds rows that failed and are still retried (status 'pending', `attempts` > 0), e.g.
   * on an error that says "retry" each time; `lastError` tells why.
   */
  parked(db: PgQueryableLike, options?: { limit?: number; failing?: boolean }): Promise<ParkedRow[]>;
  /**
   * Puts parked rows back to 'pending' with their attempts reset, so relays publish them again,
   * ahead of the later rows of their key still pending (rows of the key published while one was
   * parked are not recalled: as a dead letter replayed). `ids` omitted: every parked row. Unresolved half messages are not touched (see `HalfMessages.resolve`).
   * Resolves with the number of rows re-queued.
   */
  requeue(db: PgQueryableLike, ids?: readonly string[]): Promise<number>;
}

/** Internal: extra columns a half message is inserted with. */
export interface HalfColumns {
  group: string;
  checkAfterMs: number;
}

interface Encoded {
  id: string;
  topic: string;
  key: string | null;
  tag: string | null;
  headers: string;
  traceparent: string | null;
  contentType: string;
  payload: Buffer;
  delayMs: number;
}

function encode(message: OutgoingMessage<unknown>, now: number): Encoded {
  // Validation and encoding as send does them, so a bad message fails in the writer's transaction.
  const wire = encodeMessage(message, Number.MAX_SAFE_INTEGER, now);
  const headers: Headers = {};
  for (const [name, value] of Object.entries(wire.headers)) {
    if (!name.startsWith('mq-') && name !== 'content-type') headers[name] = value;
  }
  const traceparent = Object.entries(headers).find(([n]) => n.toLowerCase() === 'traceparent')?.[1];
  return {
    id: wire.id,
    topic: wire.topic,
    key: wire.key ?? null,
    tag: wire.tag ?? null,
    headers: JSON.stringify(headers),
    traceparent: traceparent ?? null,
    contentType: wire.headers['content-type'] as string,
    payload: Buffer.from(wire.payload.buffer, wire.payload.byteOffset, wire.payload.byteLength),
    delayMs: wire.delayMs,
  };
}

/** Inserts rows; `half` makes them prepared half messages. Shared with the half-message producer. */
export async function insertRows(
  tx: PgQueryableLike,
  table: string,
  messages: readonly OutgoingMessage<unknown>[],
  half?: HalfColumns,
): Promise<string[]> {
  if (!Array.isArray(messages)) throw new ConfigError('messages', 'must be an array');
  if (messages.length === 0) return [];
  const now = Date.now();
  const rows = messages.map((m) => encode(m, now));
  const status = half === undefined ? 'pending' : 'prepared';
  const group = half?.group ?? null;
  const checkAfter = half === undefined ? null : `${half.checkAfterMs} milliseconds`;
  if (rows.length === 1) {
    const r = rows[0] as Encoded;
    await tx.query(
      `INSERT INTO ${table} (id, topic, key, tag, headers, traceparent, content_type, payload, delay_ms, status, check_group, check_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, now() + $12::interval)`,
      [
        r.id,
        r.topic,
        r.key,
        r.tag,
        r.headers,
        r.traceparent,
        r.contentType,
        r.payload,
        r.delayMs,
        status,
        group,
        checkAfter,
      ],
    );
  } else {
    // One statement, rows in array order: seq (the per-key order) follows the array.
    await tx.query(
      `INSERT INTO ${table} (id, topic, key, tag, headers, traceparent, content_type, payload, delay_ms, status, check_group, check_at)
       SELECT i, t, k, g, h::jsonb, tp, ct, p, d, $10, $11, now() + $12::interval
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::int[])
         WITH ORDINALITY AS u(i, t, k, g, h, tp, ct, p, d, n)
       ORDER BY n`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.topic),
        rows.map((r) => r.key),
        rows.map((r) => r.tag),
        rows.map((r) => r.headers),
        rows.map((r) => r.traceparent),
        rows.map((r) => r.contentType),
        rows.map((r) => r.payload),
        rows.map((r) => r.delayMs),
        status,
        group,
        checkAfter,
      ],
    );
  }
  return rows.map((r) => r.id);
}

/**
 * The writing side of the transactional outbox: `add` a message on the connection of your own
 * transaction, and a relay (`startOutboxRelay`) publishes it once the transaction committed.
 */
export function createOutbox(options: OutboxOptions = {}): Outbox {
  refuseUnknownKeys(options, ['table'], 'outbox.');
  const table = outboxTable(options.table, 'outbox.table');
  return {
    table,
    async add(tx, message) {
      return (await insertRows(tx, table, [message]))[0] as string;
    },
    addBatch(tx, messages) {
      return insertRows(tx, table, messages);
    },
    async parked(db, given = {}) {
      refuseUnknownKeys(given, ['limit', 'failing'], 'outbox.parked.');
      const limit = intOption(given.limit, 'outbox.parked.limit', 1, 100, 100_000);
      if (given.failing !== undefined && typeof given.failing !== 'boolean') {
        throw new ConfigError('outbox.parked.failing', 'must be a boolean');
      }
      const { rows } = await db.query(
        `SELECT id, topic, key, status, attempts, checks, last_error, created_at FROM ${table}
         WHERE status IN ('parked', 'unresolved') OR ($2 AND status = 'pending' AND attempts > 0)
         ORDER BY seq LIMIT $1`,
        [limit, given.failing === true],
      );
      return rows.map((r) => ({
        id: r.id,
        topic: r.topic,
        key: r.key ?? undefined,
        status: r.status,
        attempts: r.attempts,
        checks: r.checks,
        lastError: r.last_error ?? undefined,
        createdAt: r.created_at,
      }));
    },
    async requeue(db, ids) {
      if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
        throw new ConfigError('outbox.requeue.ids', 'must be an array of message ids');
      }
      const result = await db.query(
        `WITH r AS (
           UPDATE ${table} SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
             failing_since = NULL
           WHERE status = 'parked' AND ($1::text[] IS NULL OR id = ANY($1::text[])) RETURNING 1
         ) SELECT count(*)::int AS n, pg_notify($2, '') FROM r`,
        [ids ?? null, channelOf(table)],
      );
      return result.rows[0]?.n ?? 0;
    },
  };
}

import { randomUUID } from 'node:crypto';
import type { Producer } from '../../core/broker.js';
import type { Codec, TopicSpec } from '../../core/codec.js';
import { ClosedError, ConfigError, isMqError, TimeoutError } from '../../core/errors.js';
import { type Logger, safeLog } from '../../core/logger.js';
import type { OutgoingMessage } from '../../core/message.js';
import { intOption, isPlainObject, MAX_TIMER_MS, refuseUnknownKeys, thrownText } from '../../core/options.js';
import { sleep } from '../../core/timers.js';
import {
  channelOf,
  type OutboxPoolLike,
  outboxTable,
  type PgListenClientLike,
  type PgRowsResultLike,
} from './schema.js';
import { checkWorkerOptions, type OutboxMessageRow, WorkerEvents, workerLogger } from './table-worker.js';

/** Options of {@link startOutboxRelay}. Every duration is in milliseconds. */
export interface OutboxRelayOptions {
  /**
   * Connections: the relay holds one for its advisory locks and LISTEN for as long as it runs,
   * and takes another per statement; size the pool for at least two per relay. Make it with
   * `keepAlive: true` (a `pg.Pool` option), so that a session whose network path died is
   * detected by the operating system too, not only by `sessionTimeoutMs`.
   */
  pool: OutboxPoolLike;
  /** Publishes the rows. Make it with acks 'all' (the default): a row is marked once `send` resolved. */
  producer: Producer;
  /** Default 'mqkit_outbox'. */
  table?: string;
  /** Names this relay in the `_relays` table. Default a random UUID. */
  relayId?: string;
  /** Rows per fetch and per `sendBatch`. Default 500; 1 to 10 000. */
  batchSize?: number;
  /** Polling interval, the fallback when no notification comes. Default 1000; 1 to 600 000. */
  pollMs?: number;
  /** Wake on the table's NOTIFY (sent at commit by `ensureOutbox`'s trigger). Default true. */
  listen?: boolean;
  /**
   * Publish attempts before a row is parked, when its last error is not retriable (too large,
   * unroutable, refused by a schema). A retriable error (a broker outage, a timeout) does not
   * count towards it: parking releases the key, so parking every row of an outage would break
   * per-key order; such a row is retried at the back-off's pace until `parkAfterMs`. Default
   * 10; 1 to 1000.
   */
  maxAttempts?: number;
  /**
   * A row still failing this long after its first failure is parked whatever the error: the
   * bound for errors that say "retry" and never stop (a topic that does not exist with
   * auto-creation off, a full queue that rejects publishes). Default 3 600 000 (1 h); 1 to
   * 2^31−1. Until then such a row holds back its key; `outbox.parked(db, { failing: true })`
   * and `mqkit outbox --failing` list it.
   */
  parkAfterMs?: number;
  /** Delay before retrying a failed row: initialMs × multiplier^(attempt−1), at most maxMs. Default 1000, 2, 60 000. */
  backoff?: { initialMs?: number; multiplier?: number; maxMs?: number };
  /**
   * 0 (default): a published row is deleted. Above 0: it is marked 'sent' and a cleanup task
   * deletes sent rows older than this, `cleanupBatch` rows per statement.
   */
  retainSentMs?: number;
  /** How often the cleanup runs. Default 10 000. */
  cleanupIntervalMs?: number;
  /** Rows per cleanup statement. Default 1000; 1 to 100 000. */
  cleanupBatch?: number;
  /** How often the relay renews its heartbeat and rebalances key slots. Default 2000; 10 to 600 000. */
  rebalanceMs?: number;
  /**
   * A statement on the lock session (heartbeat, locks, LISTEN) that has not answered after
   * this long is abandoned and the session's connection destroyed: the relay publishes nothing
   * until a new session has taken slots. Guards against a half-open connection, on which a
   * query would otherwise wait forever. Default 10 000; 100 to 600 000.
   */
  sessionTimeoutMs?: number;
  /** Where failures nobody awaits go. Default: process warnings (as `connect`'s default logger). */
  logger?: Logger;
}

/** Events of an {@link OutboxRelay}. Listeners run synchronously; a throwing listener is logged and ignored. */
export interface OutboxRelayEvents {
  /** Rows published (acknowledged by the broker) and marked, per batch. */
  published: { readonly count: number; readonly ids: readonly string[] };
  /** A row failed to publish; `parked` when it ran out of attempts (or failed for `parkAfterMs`). */
  failed: {
    readonly id: string;
    readonly topic: string;
    readonly key: string | undefined;
    readonly attempts: number;
    readonly error: unknown;
    readonly parked: boolean;
  };
  /** The key slots this relay publishes changed. */
  slots: { readonly owned: readonly number[] };
  /** A fetch ran: `rows` committed rows were found (0: none visible yet). */
  polled: { readonly rows: number };
  /** Sent rows deleted by the cleanup. */
  cleaned: { readonly deleted: number };
  /** A failure of a background step (also logged at `warn`); the relay carries on. */
  error: { readonly error: unknown; readonly context: string };
}

type Listener<E extends keyof OutboxRelayEvents> = (event: OutboxRelayEvents[E]) => void;

interface Row extends OutboxMessageRow {
  delay_ms: number;
  attempts: number;
}

/** Keys sent at once one message at a time (after a failed batch, or rows retried). */
const ONE_BY_ONE_KEYS = 16;

/** Rebalances in a row a slot must be seen free before a relay takes it beyond its share. */
const ORPHAN_ROUNDS = 3;

const RELAY_KEYS = [
  'pool',
  'producer',
  'table',
  'relayId',
  'batchSize',
  'pollMs',
  'listen',
  'maxAttempts',
  'parkAfterMs',
  'backoff',
  'retainSentMs',
  'cleanupIntervalMs',
  'cleanupBatch',
  'rebalanceMs',
  'sessionTimeoutMs',
  'logger',
];

/**
 * Publishes committed outbox rows through an mqkit `Producer`, then deletes them (or marks them
 * 'sent'). Start it with {@link startOutboxRelay}; run as many as you like.
 *
 * Delivery: at least once. A row is deleted or marked only after the broker acknowledged it, so
 * a relay that dies between the two publishes the row again (another relay, or this one after
 * a restart), with the same message id.
 *
 * Commit order: a row is read only when its transaction id is below the oldest transaction
 * still running (`pg_snapshot_xmin`), so a transaction that took its id first and commits last
 * is not skipped; a long-running transaction anywhere in the cluster delays every row
 * written after it began, until it ends.
 *
 * Per-key order, with several relays: each row has a slot (a hash of its key, see
 * `ensureOutbox`), and a relay publishes only the slots it holds a session-level advisory lock
 * on, so one relay at a time publishes a key, in insertion order (`seq`; one `sendBatch` keeps
 * the array's order per key). Relays register a heartbeat and divide the slots evenly; a slot
 * changes hands only between batches, and the lock of a relay that dies or loses its
 * connection is released by PostgreSQL. A failing row holds back the later rows of its key
 * until it is published or parked; a parked row no longer holds them (as a dead letter).
 * The relay's own list of slots is not trusted: a fetch returns only rows of slots whose lock
 * the session's backend still holds (`pg_locks`), so a session that ended unnoticed publishes
 * nothing more. Not covered: a relay whose session drops while a batch is in flight does not recall that
 * batch, so the new owner's first batch may repeat it (duplicates; that key's order then holds
 * only per message id's first delivery).
 */
export interface OutboxRelay {
  readonly relayId: string;
  /** Slots this relay holds now. */
  readonly slots: readonly number[];
  on<E extends keyof OutboxRelayEvents>(event: E, listener: Listener<E>): () => void;
  /** Wakes the relay now (as a notification would). */
  wake(): void;
  /**
   * Finishes the batch in flight (its marks included), stops, releases its slots and its
   * connection. Does not close the producer.
   */
  close(): Promise<void>;
}

/** A codec that passes the stored bytes through, so the message keeps the content type it was written with. */
function passThrough(contentType: string): Codec<Uint8Array> {
  return { contentType, encode: (b) => b, decode: (b) => b };
}

class Relay implements OutboxRelay {
  readonly relayId: string;
  private readonly pool: OutboxPoolLike;
  private readonly producer: Producer;
  private readonly table: string;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly listen: boolean;
  private readonly maxAttempts: number;
  private readonly parkAfterMs: number;
  private readonly backoff: { initialMs: number; multiplier: number; maxMs: number };
  private readonly retainSentMs: number;
  private readonly cleanupIntervalMs: number;
  private readonly cleanupBatch: number;
  private readonly rebalanceMs: number;
  private readonly sessionTimeoutMs: number;
  private readonly logger: Logger;
  private readonly lockClass: string;
  private readonly events: WorkerEvents<OutboxRelayEvents>;
  private readonly specs = new Map<string, TopicSpec<Uint8Array>>();
  private readonly owned = new Set<number>();
  /** Rows published and not yet deleted or marked 'sent'. */
  private marks: Row[] = [];
  /**
   * Per free slot, the rebalances in a row it was seen free (not counting one this relay had
   * just given back): taken beyond this relay's share once it reaches ORPHAN_ROUNDS.
   */
  private freeRounds = new Map<number, number>();
  private slotCount = 0;
  private session: PgListenClientLike | undefined;
  /** `pg_backend_pid()` of the session: a fetch returns only rows of slots this backend still locks. */
  private sessionPid = 0;
  private sessionBroken = false;
  private closed = false;
  private readonly stop = new AbortController();
  private notified = false;
  private wakeUp: (() => void) | undefined;
  private nextRebalance = 0;
  private loop: Promise<void> | undefined;
  private cleanup: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: OutboxRelayOptions) {
    checkWorkerOptions(options, RELAY_KEYS, 'outboxRelay');
    this.pool = options.pool;
    this.producer = options.producer;
    this.table = outboxTable(options.table, 'outboxRelay.table');
    this.relayId = options.relayId ?? randomUUID();
    if (typeof this.relayId !== 'string' || this.relayId === '') {
      throw new ConfigError('outboxRelay.relayId', 'must be a non-empty string');
    }
    this.batchSize = intOption(options.batchSize, 'outboxRelay.batchSize', 1, 500, 10_000);
    this.pollMs = intOption(options.pollMs, 'outboxRelay.pollMs', 1, 1000, 600_000);
    if (options.listen !== undefined && typeof options.listen !== 'boolean') {
      throw new ConfigError('outboxRelay.listen', 'must be a boolean');
    }
    this.listen = options.listen ?? true;
    this.maxAttempts = intOption(options.maxAttempts, 'outboxRelay.maxAttempts', 1, 10, 1000);
    this.parkAfterMs = intOption(options.parkAfterMs, 'outboxRelay.parkAfterMs', 1, 3_600_000, MAX_TIMER_MS);
    const b = options.backoff ?? {};
    if (!isPlainObject(b)) throw new ConfigError('outboxRelay.backoff', 'must be an options object');
    refuseUnknownKeys(b, ['initialMs', 'multiplier', 'maxMs'], 'outboxRelay.backoff.');
    const initialMs = intOption(b.initialMs, 'outboxRelay.backoff.initialMs', 0, 1000, MAX_TIMER_MS);
    const multiplier = b.multiplier ?? 2;
    if (typeof multiplier !== 'number' || !(multiplier >= 1 && multiplier <= 100)) {
      throw new ConfigError('outboxRelay.backoff.multiplier', 'must be a number from 1 to 100');
    }
    const maxMs = intOption(
      b.maxMs,
      'outboxRelay.backoff.maxMs',
      initialMs,
      Math.max(60_000, initialMs),
      MAX_TIMER_MS,
    );
    this.backoff = { initialMs, multiplier, maxMs };
    this.retainSentMs = intOption(options.retainSentMs, 'outboxRelay.retainSentMs', 0, 0);
    this.cleanupIntervalMs = intOption(
      options.cleanupIntervalMs,
      'outboxRelay.cleanupIntervalMs',
      1,
      10_000,
      MAX_TIMER_MS,
    );
    this.cleanupBatch = intOption(options.cleanupBatch, 'outboxRelay.cleanupBatch', 1, 1000, 100_000);
    this.rebalanceMs = intOption(options.rebalanceMs, 'outboxRelay.rebalanceMs', 10, 2000, 600_000);
    this.sessionTimeoutMs = intOption(
      options.sessionTimeoutMs,
      'outboxRelay.sessionTimeoutMs',
      100,
      10_000,
      600_000,
    );
    this.logger = workerLogger(options.logger, 'outboxRelay');
    this.events = new WorkerEvents(this.logger, "the outbox relay's", 'outbox relay', {
      relayId: this.relayId,
    });
    this.lockClass = `mqkit-outbox:${this.table}`;
  }

  get slots(): readonly number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  on<E extends keyof OutboxRelayEvents>(event: E, listener: Listener<E>): () => void {
    return this.events.on(event, listener);
  }

  private emit<E extends keyof OutboxRelayEvents>(event: E, payload: OutboxRelayEvents[E]): void {
    this.events.emit(event, payload);
  }

  wake(): void {
    this.notified = true;
    this.wakeUp?.();
  }

  async start(): Promise<void> {
    const { rows } = await this.pool.query(`SELECT slots FROM ${this.table}_meta LIMIT 1`);
    const slots = rows[0]?.slots;
    if (typeof slots !== 'number') {
      throw new ConfigError('outboxRelay.table', `${this.table} has no slot count: run ensureOutbox first`);
    }
    this.slotCount = slots;
    try {
      await this.openSession();
      await this.rebalance();
    } catch (error) {
      await this.closeSession();
      throw error;
    }
    this.loop = this.run();
    if (this.retainSentMs > 0) this.cleanup = this.runCleanup();
  }

  private async openSession(): Promise<void> {
    const client = await this.pool.connect();
    this.sessionBroken = false;
    client.on('error', (error: Error) => {
      if (this.session !== client) return; // an abandoned session's late error
      this.lostSession(error, 'lock session lost');
    });
    if (this.listen) {
      client.on('notification', (message) => {
        if (this.session !== client) return;
        if (message.channel === channelOf(this.table)) this.wake();
      });
    }
    this.session = client;
    try {
      const { rows } = await this.sessionQuery('SELECT pg_backend_pid() AS pid');
      this.sessionPid = rows[0]?.pid as number;
      if (this.listen) await this.sessionQuery(`LISTEN ${channelOf(this.table)}`);
    } catch (error) {
      // Not given back to the pool: its state (LISTEN half done, a query pending) is unknown.
      await this.closeSession();
      throw error;
    }
  }

  /** The session's locks are gone (or may be): stop publishing its slots at once. */
  private lostSession(error: unknown, context: string): void {
    this.sessionBroken = true;
    if (this.owned.size > 0) {
      this.owned.clear();
      this.emit('slots', { owned: [] });
    }
    this.events.report(error, context);
    this.wake();
  }

  /**
   * A statement on the lock session, abandoned after `sessionTimeoutMs`: the connection is then
   * destroyed (a half-open socket would never answer) and a new session opened at the next turn.
   */
  private sessionQuery(text: string, values?: unknown[]): Promise<PgRowsResultLike> {
    const client = this.session;
    if (client === undefined) return Promise.reject(new ClosedError('the outbox relay has no lock session'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new TimeoutError(
          `the outbox relay's lock session did not answer within ${this.sessionTimeoutMs} ms`,
        );
        if (this.session === client) {
          this.session = undefined;
          client.release(true);
          this.lostSession(error, 'lock session timed out; opening a new one');
        }
        reject(error);
      }, this.sessionTimeoutMs);
      client.query(text, values).then(
        (result) => {
          clearTimeout(timer);
          resolve(result);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  private async closeSession(): Promise<void> {
    const client = this.session;
    this.session = undefined;
    if (client === undefined) return;
    const hadSlots = this.owned.size > 0;
    this.owned.clear();
    if (hadSlots) this.emit('slots', { owned: [] });
    // Destroying the connection ends the session: PostgreSQL releases its locks and LISTEN.
    client.release(true);
  }

  /** Renews the heartbeat and takes or gives back slots towards an even share. */
  private async rebalance(): Promise<void> {
    try {
      await this.rebalanceOnce();
    } catch (error) {
      // Whether the session still holds its locks is unknown: publish nothing until a new
      // session has taken slots again.
      this.sessionBroken = true;
      if (this.owned.size > 0) {
        this.owned.clear();
        this.emit('slots', { owned: [] });
      }
      throw error;
    }
  }

  private async rebalanceOnce(): Promise<void> {
    this.nextRebalance = Date.now() + this.rebalanceMs;
    if (this.session === undefined || this.sessionBroken) {
      await this.closeSession();
      await this.openSession();
    }
    const ttl = `${this.rebalanceMs * 5} milliseconds`;
    await this.sessionQuery(
      `INSERT INTO ${this.table}_relays (relay_id, seen_at) VALUES ($1, now())
       ON CONFLICT (relay_id) DO UPDATE SET seen_at = now()`,
      [this.relayId],
    );
    const live = await this.sessionQuery(
      `SELECT relay_id FROM ${this.table}_relays WHERE seen_at > now() - $1::interval ORDER BY relay_id`,
      [ttl],
    );
    const ids = live.rows.map((r) => r.relay_id as string);
    const count = Math.max(1, ids.length);
    const index = Math.max(0, ids.indexOf(this.relayId));
    const share = Math.ceil(this.slotCount / count);
    const before = this.slots.join(',');
    let extra: number[] = [];
    if (this.owned.size > share) {
      extra = this.slots.slice(share - this.owned.size);
      await this.sessionQuery('SELECT pg_advisory_unlock(hashtext($1), s) FROM unnest($2::int[]) s', [
        this.lockClass,
        extra,
      ]);
      for (const s of extra) this.owned.delete(s);
    }
    // Slots held by anyone now (this database, this table's lock class).
    const held = await this.sessionQuery(
      `SELECT objid::int AS slot FROM pg_locks
       WHERE locktype = 'advisory' AND objsubid = 2 AND granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND classid = (hashtext($1)::bigint & 4294967295)::text::oid`,
      [this.lockClass],
    );
    const taken = new Set(held.rows.map((r) => r.slot as number));
    const free: number[] = [];
    // Start where an even split would put this relay, so relays starting together contend less.
    const start = (index * share) % this.slotCount;
    for (let i = 0; i < this.slotCount; i++) {
      const s = (start + i) % this.slotCount;
      if (!taken.has(s)) free.push(s);
    }
    const wanted = free.slice(0, Math.max(0, share - this.owned.size));
    // A slot nobody took for several rebalances in a row is taken whatever the share: a relay
    // that died may still be counted live (its heartbeat not yet expired), and its slots must
    // not wait for that. Not one this relay just gave back: relays under their share take those.
    const rounds = new Map<number, number>();
    for (const s of free) rounds.set(s, extra.includes(s) ? 0 : (this.freeRounds.get(s) ?? 0) + 1);
    this.freeRounds = rounds;
    for (const s of free.slice(wanted.length)) if ((rounds.get(s) ?? 0) >= ORPHAN_ROUNDS) wanted.push(s);
    if (wanted.length > 0) {
      const got = await this.sessionQuery(
        'SELECT s FROM unnest($2::int[]) s WHERE pg_try_advisory_lock(hashtext($1), s)',
        [this.lockClass, wanted],
      );
      for (const r of got.rows) this.owned.add(r.s as number);
    }
    if (Math.random() < 0.1) {
      await this.sessionQuery(`DELETE FROM ${this.table}_relays WHERE seen_at < now() - $1::interval * 10`, [
        ttl,
      ]);
    }
    if (this.slots.join(',') !== before) this.emit('slots', { owned: this.slots });
  }

  private async run(): Promise<void> {
    let quiet = 0; // empty fetches in a row since a notification
    let failures = 0;
    while (!this.closed) {
      try {
        if (Date.now() >= this.nextRebalance || this.sessionBroken) {
          await this.flushMarks();
          await this.rebalance();
        }
        let published = 0;
        // Cleared on every turn, slots or not: a relay holding none must still wait in idle().
        const woken = this.notified;
        this.notified = false;
        if (this.owned.size > 0) {
          published = await this.batch();
          if (published > 0) {
            quiet = 0;
            failures = 0;
            continue;
          }
          // A notified row may be held back by an older transaction still running: look again
          // soon, backing off to the polling interval.
          quiet = woken ? 1 : quiet > 0 ? quiet + 1 : 0;
        }
        failures = 0;
        const pause = quiet > 0 && quiet < 12 ? Math.min(this.pollMs, 2 ** quiet) : this.pollMs;
        await this.idle(Math.min(pause, Math.max(1, this.nextRebalance - Date.now())));
      } catch (error) {
        if (this.closed) break;
        failures++;
        this.events.report(error, 'batch failed; retrying');
        await sleep(Math.min(this.pollMs, 50 * 2 ** Math.min(failures, 6)), this.stop.signal);
      }
    }
    try {
      await this.flushMarks();
    } catch (error) {
      this.events.report(error, 'marking the last batch failed; its rows will be published again');
    }
  }

  private idle(ms: number): Promise<void> {
    if (this.notified || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wakeUp = undefined;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  /** Fetches, publishes and marks one batch; resolves with the rows published. */
  private async batch(): Promise<number> {
    // The marks of the previous batch travel with this fetch: one round trip per batch. The
    // fetch reads the snapshot from before they apply, so it leaves those rows out itself.
    const marking = this.marks;
    const { rows: fetched } = (await this.pool.query(
      `WITH ${this.markCte(3)},
       -- Only slots this relay's session still holds the lock of: should the session have
       -- ended unnoticed (a half-open connection), another relay may own them by now.
       mine AS (
         SELECT objid::int AS slot FROM pg_locks
         WHERE pid = $4 AND locktype = 'advisory' AND objsubid = 2 AND granted
           AND classid = (hashtext($5)::bigint & 4294967295)::text::oid
       ),
       blocked AS (
         SELECT DISTINCT key FROM ${this.table}
         WHERE status = 'pending' AND attempts > 0 AND next_attempt_at > now() AND key IS NOT NULL
       )
       SELECT seq, id, topic, key, tag, headers, content_type, payload, delay_ms, attempts FROM ${this.table}
       WHERE status = 'pending' AND slot = ANY($1::int[]) AND slot IN (SELECT slot FROM mine)
         AND txid < pg_snapshot_xmin(pg_current_snapshot())
         AND next_attempt_at <= now()
         AND (key IS NULL OR key NOT IN (SELECT key FROM blocked))
         AND seq <> ALL($3::bigint[])
       ORDER BY seq LIMIT $2`,
      [this.slots, this.batchSize, marking.map((r) => r.seq), this.sessionPid, this.lockClass],
    )) as { rows: Row[] };
    this.marked(marking);
    this.emit('polled', { rows: fetched.length });
    // A row that failed before goes without the later rows of its key: should it fail again,
    // none of them may be stored ahead of it (a failed sendBatch may have stored the rest).
    const retrying = new Set<string>();
    const rows = fetched.filter((r) => {
      if (r.key === null) return true;
      if (retrying.has(r.key)) return false;
      if (r.attempts > 0) retrying.add(r.key);
      return true;
    });
    if (rows.length === 0) return 0;
    // Rows that failed before go one by one, ahead of the batch: in a `sendBatch`, a row failing
    // again could fail the batch after the broker stored others of it, which the one-by-one
    // fallback would then send again (duplicates).
    const again = rows.filter((r) => r.attempts > 0);
    const fresh = again.length === 0 ? rows : rows.filter((r) => r.attempts === 0);
    // Filled as rows are published: should a step throw, what was published is still marked
    // (with the next fetch, or the flush).
    const done: Row[] = [];
    this.marks = done;
    if (again.length > 0) {
      await this.oneByOne(
        again,
        again.map((r) => this.message(r)),
        done,
      );
      if (this.sessionBroken) return done.length;
    }
    if (fresh.length > 0) {
      const messages = fresh.map((r) => this.message(r));
      try {
        await this.producer.sendBatch(messages);
        done.push(...fresh);
      } catch (error) {
        // A closed producer is not the rows' fault: count no attempt, let the loop back off.
        if (isMqError(error, 'CLOSED')) throw error;
        await this.oneByOne(fresh, messages, done);
      }
    }
    return done.length;
  }

  /** The statement part that deletes (or marks 'sent') the rows whose seqs are parameter `n`. */
  private markCte(n: number): string {
    return this.retainSentMs === 0
      ? `done AS (DELETE FROM ${this.table} WHERE seq = ANY($${n}::bigint[]))`
      : `done AS (UPDATE ${this.table} SET status = 'sent', sent_at = now() WHERE seq = ANY($${n}::bigint[]))`;
  }

  private marked(rows: Row[]): void {
    if (rows.length === 0) return;
    if (this.marks === rows) this.marks = [];
    this.emit('published', { count: rows.length, ids: rows.map((r) => r.id) });
  }

  /** Marks what was published and not marked yet: before slots change hands, and on close. */
  private async flushMarks(): Promise<void> {
    const marking = this.marks;
    if (marking.length === 0) return;
    await this.pool.query(`WITH ${this.markCte(1)} SELECT 1`, [marking.map((r) => r.seq)]);
    this.marked(marking);
  }

  /**
   * Rows that failed before, or a failed `sendBatch` (some of it may be stored): each key's
   * rows in order, up to ONE_BY_ONE_KEYS keys at a time; a key stops at its first failure,
   * which is recorded with its back-off (or parked). Resolves once every key's chain has
   * settled, so none is still sending when the relay moves on; then rethrows the first
   * unexpected failure (recording one, say). Published rows are pushed to `done`.
   */
  private async oneByOne(rows: Row[], messages: OutgoingMessage<Uint8Array>[], done: Row[]): Promise<void> {
    const chains = new Map<string, number[]>();
    rows.forEach((r, i) => {
      const k = r.key === null ? `\0${r.id}` : r.key;
      const chain = chains.get(k);
      if (chain === undefined) chains.set(k, [i]);
      else chain.push(i);
    });
    const queue = [...chains.values()];
    let failed = false;
    const sendChain = async (chain: number[]): Promise<void> => {
      for (const i of chain) {
        const row = rows[i] as Row;
        if (this.sessionBroken || failed) return;
        try {
          await this.producer.send(messages[i] as OutgoingMessage<Uint8Array>);
          done.push(row);
        } catch (error) {
          if (isMqError(error, 'CLOSED')) return;
          await this.recordFailure(row, error);
          return;
        }
      }
    };
    const worker = async (): Promise<void> => {
      for (let chain = queue.shift(); chain !== undefined; chain = queue.shift()) {
        try {
          await sendChain(chain);
        } catch (error) {
          failed = true; // the other chains stop at their next row
          throw error;
        }
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(ONE_BY_ONE_KEYS, queue.length) }, worker),
    );
    const rejected = results.find((r) => r.status === 'rejected');
    if (rejected !== undefined) throw rejected.reason;
  }

  private async recordFailure(row: Row, error: unknown): Promise<void> {
    const attempts = row.attempts + 1;
    // A retriable error (a broker outage, a timeout) says nothing against the row: it keeps
    // being retried at the back-off's pace, not parked after maxAttempts (parking releases the
    // key, and an outage would park the head of every key). Only parkAfterMs after its first
    // failure is it parked whatever the error, so an error that says "retry" forever ends.
    const exhausted = attempts >= this.maxAttempts && !(isMqError(error) && error.retriable);
    const delay = Math.min(
      this.backoff.maxMs,
      this.backoff.initialMs * this.backoff.multiplier ** Math.max(0, attempts - 1),
    );
    // SET expressions read the row as it was: failing_since is the first failure's time.
    const { rows } = await this.pool.query(
      `UPDATE ${this.table} SET attempts = $2, last_error = $3,
         status = CASE WHEN $4::boolean OR coalesce(failing_since, now()) <= now() - $6::interval
                  THEN 'parked' ELSE 'pending' END,
         failing_since = coalesce(failing_since, now()),
         next_attempt_at = now() + $5::interval
       WHERE seq = $1 AND status = 'pending' RETURNING status`,
      [
        row.seq,
        attempts,
        thrownText(error).slice(0, 2000),
        exhausted,
        `${Math.round(delay)} milliseconds`,
        `${this.parkAfterMs} milliseconds`,
      ],
    );
    const parked = rows[0]?.status === 'parked';
    this.emit('failed', { id: row.id, topic: row.topic, key: row.key ?? undefined, attempts, error, parked });
    if (parked) {
      safeLog(
        this.logger,
        'error',
        { id: row.id, topic: row.topic, attempts, err: error },
        `outbox relay: message ${row.id} to ${row.topic} parked after ${attempts} attempts: ${thrownText(error)}`,
      );
    }
  }

  private message(row: Row): OutgoingMessage<Uint8Array> {
    const cacheKey = `${row.content_type}\0${row.topic}`;
    let spec = this.specs.get(cacheKey);
    if (spec === undefined) {
      if (this.specs.size >= 10_000) this.specs.clear();
      spec = Object.freeze({ name: row.topic, codec: passThrough(row.content_type), schema: undefined });
      this.specs.set(cacheKey, spec);
    }
    const message: OutgoingMessage<Uint8Array> = {
      topic: spec,
      body: row.payload,
      id: row.id,
      headers: row.headers,
    };
    if (row.key !== null) message.key = row.key;
    if (row.tag !== null) message.tag = row.tag;
    if (row.delay_ms > 0) message.delayMs = row.delay_ms;
    return message;
  }

  private async runCleanup(): Promise<void> {
    while (!this.closed) {
      if (!(await sleep(this.cleanupIntervalMs, this.stop.signal))) return;
      try {
        // Bounded statements, each its own short transaction, skipping rows another cleanup
        // holds: the relay's marks never wait on a long delete.
        for (;;) {
          const result = await this.pool.query(
            `DELETE FROM ${this.table} WHERE seq IN (
               SELECT seq FROM ${this.table} WHERE status = 'sent' AND sent_at < now() - $1::interval
               ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
            [`${this.retainSentMs} milliseconds`, this.cleanupBatch],
          );
          const deleted = result.rowCount ?? 0;
          if (deleted > 0) this.emit('cleaned', { deleted });
          if (deleted < this.cleanupBatch || this.closed) break;
        }
      } catch (error) {
        this.events.report(error, 'cleanup failed; trying again at the next interval');
      }
    }
  }

  close(): Promise<void> {
    // A second call returns the first one's promise: it resolves once the relay is closed.
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.stop.abort();
    this.wakeUp?.();
    await this.loop;
    await this.cleanup;
    try {
      await this.sessionQuery(`DELETE FROM ${this.table}_relays WHERE relay_id = $1`, [this.relayId]);
    } catch {
      // The heartbeat expires by itself.
    }
    await this.closeSession();
  }
}

/**
 * Starts a relay: reads the table's slot count, takes its connection for locks and LISTEN,
 * takes its first slots, and starts publishing. Rejects if PostgreSQL cannot be reached or the
 * table is missing (run `ensureOutbox` first).
 */
export async function startOutboxRelay(options: OutboxRelayOptions): Promise<OutboxRelay> {
  const relay = new Relay(options);
  await relay.start();
  return relay;
}

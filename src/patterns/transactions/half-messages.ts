import type { Producer } from '../../core/broker.js';
import { bytesCodec, decodeBody, jsonCodec } from '../../core/codec.js';
import { ClosedError, ConfigError, UnsupportedError } from '../../core/errors.js';
import { type Logger, safeLog } from '../../core/logger.js';
import type { Headers, OutgoingMessage, TopicRef } from '../../core/message.js';
import {
  NATIVE_TRANSACTIONS,
  type NativeHalf,
  type NativeTransactionGroup,
  type NativeTransactions,
} from '../../core/native-transactions.js';
import {
  groupName,
  intOption,
  isPlainObject,
  MAX_TIMER_MS,
  refuseUnknownKeys,
  thrownText,
  userTopicName,
} from '../../core/options.js';
import { sleep } from '../../core/timers.js';
import { insertRows } from '../outbox/outbox.js';
import { type OutboxRelay, type OutboxRelayOptions, startOutboxRelay } from '../outbox/relay.js';
import { channelOf, type OutboxPoolLike, outboxTable } from '../outbox/schema.js';
import {
  checkWorkerOptions,
  type OutboxMessageRow,
  WorkerEvents,
  workerLogger,
} from '../outbox/table-worker.js';

/**
 * What the application says about its local transaction (RocketMQ's LocalTransactionState).
 * TypeScript widens an async arrow function's single literal return (`async () => 'commit'`)
 * to `string`: write `'commit' as const`, or annotate the return type.
 */
export type LocalTransactionState = 'commit' | 'rollback' | 'unknown';

/** Where a half message stands. */
export type HalfMessageState =
  /** Stored, invisible to consumers, waiting for a decision (from the sender or a check). */
  | 'prepared'
  /** Committed: handed to the outbox relay, which publishes it (and by default deletes the row). */
  | 'committed'
  /** Rolled back: never published. */
  | 'rolled-back'
  /** Out of checks with no decision: parked, never published unless resolved by hand. */
  | 'unresolved';

/** A half message as the local transaction and the check see it. */
export interface HalfMessage<T = unknown> {
  readonly id: string;
  readonly topic: string;
  /**
   * The body. In the local transaction: the body given to `sendInTransaction`. In a check: the
   * stored body decoded by its content type when mqkit knows it (JSON, text/*, bytes as a
   * Buffer); otherwise (a topic with a custom codec, whose codec the checker does not have)
   * the stored bytes as a Buffer, undecoded: decode them with `contentType`'s codec. A body
   * that cannot be decoded is handed over the same way; it never counts as a check.
   */
  readonly body: T;
  /** The content type the body was encoded with (e.g. 'application/json', or a custom codec's). */
  readonly contentType: string;
  readonly key: string | undefined;
  readonly tag: string | undefined;
  readonly headers: Headers;
  /** Checks made so far, this one included (0 in the local transaction). */
  readonly checks: number;
}

/** Options of {@link halfMessages}. Durations in milliseconds. */
export interface HalfMessagesOptions {
  /** Where half messages are stored: the outbox table (`ensureOutbox`). */
  pool: OutboxPoolLike;
  /** Publishes committed half messages (through the relay). Acks 'all' (the default). */
  producer: Producer;
  /**
   * The producer group (RocketMQ's): every live `halfMessages` of one group checks the group's
   * prepared messages, whichever process sent them. Same rules as a consumer group name.
   */
  group: string;
  /**
   * Answers a check: the state of the local transaction of `message`. Throwing counts as
   * 'unknown'. Called by any live member of the group. A member claims a due message by
   * moving its next check one `checkIntervalMs` on, so a check that takes longer than that
   * may run while the next one starts (in this process or another): make it a read of your
   * own state, safe to run twice at once.
   */
  checkLocalTransaction: (message: HalfMessage) => LocalTransactionState | Promise<LocalTransactionState>;
  /** Default 'mqkit_outbox'. */
  table?: string;
  /**
   * Time before the first check (RocketMQ's transaction timeout). Default 6000; per message too.
   * Refused with `UnsupportedError` on a RocketMQ producer (the broker's `transactionTimeOut`).
   */
  immunityMs?: number;
  /**
   * Time between checks. Default 30 000. Refused with `UnsupportedError` on a RocketMQ producer
   * (the broker's `transactionCheckInterval`).
   */
  checkIntervalMs?: number;
  /**
   * Checks before a message with no decision is parked as 'unresolved'. Default 15; 1 to 1000.
   * Refused with `UnsupportedError` on a RocketMQ producer (the broker's `transactionCheckMax`,
   * after which it discards the message).
   */
  maxChecks?: number;
  /**
   * Topics this member sends half messages to. On a RocketMQ producer the broker asks only
   * processes that publish to a message's topic: listing them makes this member one from
   * `start`, so that it answers checks (after a restart, or for a sender that died) before it
   * sent anything itself. Without it a member answers only for topics it sent to since it
   * started. No effect with the PostgreSQL table (any member checks every message of the group).
   */
  topics?: readonly TopicRef<unknown>[];
  /** How often the checker looks for due messages (and reports the gauge). Default 1000. */
  scanMs?: number;
  /** How long rolled-back rows are kept (then deleted, bounded). Default 24 h. */
  keepRolledBackMs?: number;
  /**
   * Run an outbox relay on the table with `producer` (true, the default), with these relay
   * options, or not (false: another process's relay publishes committed messages).
   */
  relay?: boolean | Omit<OutboxRelayOptions, 'pool' | 'producer' | 'table' | 'logger'>;
  logger?: Logger;
}

/** Events of a {@link TransactionalProducer}. */
export interface HalfMessageEvents {
  /**
   * The gauge of pending half messages: rows of the group in the 'prepared' state (stored,
   * waiting for a decision), counted at each scan (`scanMs`). Named after that state, not the
   * outbox's 'pending' (committed rows waiting for the relay, which it does not count).
   */
  prepared: { readonly group: string; readonly count: number };
  /** A check was answered (`error` when it threw, which counts as 'unknown'). */
  checked: {
    readonly id: string;
    readonly checks: number;
    readonly state: LocalTransactionState;
    readonly error?: unknown;
  };
  /** A half message reached a final state, by its sender, a check, or `resolve`. */
  resolved: { readonly id: string; readonly state: 'committed' | 'rolled-back' | 'unresolved' };
  error: { readonly error: unknown; readonly context: string };
}

/** What `sendInTransaction` resolves with. */
export interface TransactionSendResult {
  id: string;
  /** 'prepared' when the local transaction answered 'unknown' or threw: a check decides. */
  state: HalfMessageState;
  /** What the local transaction threw, if it did. */
  error?: unknown;
}

/**
 * RocketMQ-style transactional messages on any broker, held in PostgreSQL. See
 * {@link halfMessages}.
 */
export interface TransactionalProducer {
  readonly group: string;
  /**
   * Stores `message` as a half message (durable, invisible to consumers), runs
   * `localTransaction`, then commits the message (the relay publishes it) or rolls it back
   * (never published). 'unknown', a throw, or a crash before the decision leaves it prepared:
   * the group's checker then asks `checkLocalTransaction`, first after `immunityMs` (default the
   * producer's), then every `checkIntervalMs`, at most `maxChecks` times, then parks it as
   * 'unresolved'. A decision races a check harmlessly: the first one recorded wins.
   * Rejects only when the half message could not be stored (nothing was sent; the local
   * transaction did not run; `ClosedError` after `close()`) or the decision could not be
   * recorded in the table (a check will decide). With native half messages (RocketMQ), a
   * decision the broker did not take resolves 'prepared' instead, the error reported to the
   * logger and the 'error' event (the broker's check will decide).
   */
  sendInTransaction<T>(
    message: OutgoingMessage<T>,
    localTransaction: (
      message: HalfMessage<NoInfer<T>>,
    ) => LocalTransactionState | Promise<LocalTransactionState>,
    options?: { immunityMs?: number },
  ): Promise<TransactionSendResult>;
  /**
   * The state of a half message of this group; undefined once its row is gone (committed and
   * published, or cleaned up). With native transactional messages (a RocketMQ producer) always
   * undefined: the broker holds them and cannot be asked; `unresolved` is then empty and
   * `resolve` false (the broker's checks decide, and it discards a message still undecided
   * after its `transactionCheckMax` checks).
   */
  state(id: string): Promise<HalfMessageState | undefined>;
  /** Unresolved half messages of this group, oldest first. */
  unresolved(options?: {
    limit?: number;
  }): Promise<{ id: string; topic: string; checks: number; lastError: string | undefined }[]>;
  /**
   * Decides a prepared or unresolved message by hand. Resolves false when it is neither
   * (already decided, or unknown).
   */
  resolve(id: string, decision: 'commit' | 'rollback'): Promise<boolean>;
  on<E extends keyof HalfMessageEvents>(
    event: E,
    listener: (event: HalfMessageEvents[E]) => void,
  ): () => void;
  /** Stops the checker and the relay it runs (finishing checks in flight). Does not close the producer. */
  close(): Promise<void>;
}

/** Rolled-back rows deleted per statement. */
const CLEANUP_BATCH = 1000;

/** Relay options `halfMessages` sets itself. */
const RELAY_OWN_KEYS = ['pool', 'producer', 'table', 'logger'];

const KEYS = [
  'pool',
  'producer',
  'group',
  'checkLocalTransaction',
  'table',
  'immunityMs',
  'checkIntervalMs',
  'maxChecks',
  'topics',
  'scanMs',
  'keepRolledBackMs',
  'relay',
  'logger',
];

interface HalfRow extends OutboxMessageRow {
  checks: number;
}

const STATES: Record<string, HalfMessageState> = {
  prepared: 'prepared',
  pending: 'committed',
  sent: 'committed',
  parked: 'committed',
  rolled_back: 'rolled-back',
  unresolved: 'unresolved',
};

/** The content types mqkit decodes without the topic's codec. */
function knownContentType(contentType: string): boolean {
  return (
    contentType === jsonCodec.contentType ||
    contentType === bytesCodec.contentType ||
    contentType.startsWith('text/')
  );
}

/** A stored body for a check: decoded when mqkit can, else the bytes (see `HalfMessage.body`). */
function bodyOf(row: HalfRow): unknown {
  if (!knownContentType(row.content_type)) return row.payload;
  try {
    return decodeBody(row.payload, row.content_type, undefined);
  } catch {
    return row.payload;
  }
}

/** The content type `add` stores a message's body with (as `encodeBody` picks it). */
function contentTypeOf(message: OutgoingMessage<unknown>): string {
  if (typeof message.topic !== 'string' && message.topic.codec) return message.topic.codec.contentType;
  return message.body instanceof Uint8Array ? bytesCodec.contentType : jsonCodec.contentType;
}

/**
 * Runs the application's local transaction on `message`, stored as half message `id`. Resolves
 * with its answer, or with 'unknown' and what it threw: an answer other than 'commit',
 * 'rollback' or 'unknown' counts as a throw (a `ConfigError`). Never rejects.
 */
async function runLocalTransaction<T>(
  localTransaction: (message: HalfMessage<T>) => LocalTransactionState | Promise<LocalTransactionState>,
  message: OutgoingMessage<T>,
  id: string,
): Promise<{ state: LocalTransactionState; error: unknown }> {
  try {
    const state = await localTransaction({
      id,
      topic: typeof message.topic === 'string' ? message.topic : message.topic.name,
      body: message.body,
      key: message.key,
      tag: message.tag,
      headers: { ...message.headers },
      contentType: contentTypeOf(message),
      checks: 0,
    });
    if (state !== 'commit' && state !== 'rollback' && state !== 'unknown') {
      throw new ConfigError(
        'localTransaction',
        `must return 'commit', 'rollback' or 'unknown' (got ${String(state)})`,
      );
    }
    return { state, error: undefined };
  } catch (thrown) {
    return { state: 'unknown', error: thrown };
  }
}

class HalfMessages implements TransactionalProducer {
  readonly group: string;
  private readonly pool: OutboxPoolLike;
  private readonly check: HalfMessagesOptions['checkLocalTransaction'];
  private readonly table: string;
  private readonly immunityMs: number;
  private readonly intervalMs: number;
  private readonly maxChecks: number;
  private readonly scanMs: number;
  private readonly keepRolledBackMs: number;
  private readonly logger: Logger;
  private readonly events: WorkerEvents<HalfMessageEvents>;
  private readonly stop = new AbortController();
  private relay: OutboxRelay | undefined;
  private loop: Promise<void> | undefined;
  private closed = false;
  /** The broker's own transactional messages, where the producer offers them (RocketMQ). */
  private native: NativeTransactionGroup | undefined;
  private readonly topics: string[];

  constructor(private readonly options: HalfMessagesOptions) {
    checkWorkerOptions(options, KEYS, 'halfMessages');
    if (typeof options.checkLocalTransaction !== 'function') {
      throw new ConfigError('halfMessages.checkLocalTransaction', 'must be a function');
    }
    this.group = groupName(options.group, 'halfMessages.group');
    this.pool = options.pool;
    this.check = options.checkLocalTransaction;
    this.table = outboxTable(options.table, 'halfMessages.table');
    this.immunityMs = intOption(options.immunityMs, 'halfMessages.immunityMs', 0, 6000, MAX_TIMER_MS);
    this.intervalMs = intOption(
      options.checkIntervalMs,
      'halfMessages.checkIntervalMs',
      1,
      30_000,
      MAX_TIMER_MS,
    );
    this.maxChecks = intOption(options.maxChecks, 'halfMessages.maxChecks', 1, 15, 1000);
    this.scanMs = intOption(options.scanMs, 'halfMessages.scanMs', 1, 1000, 600_000);
    this.keepRolledBackMs = intOption(
      options.keepRolledBackMs,
      'halfMessages.keepRolledBackMs',
      0,
      24 * 3600_000,
    );
    if (options.relay !== undefined && typeof options.relay !== 'boolean' && !isPlainObject(options.relay)) {
      throw new ConfigError('halfMessages.relay', 'must be a boolean or relay options');
    }
    if (isPlainObject(options.relay)) {
      for (const key of RELAY_OWN_KEYS) {
        if (key in options.relay) {
          throw new ConfigError(`halfMessages.relay.${key}`, `is set by halfMessages (its own ${key})`);
        }
      }
    }
    this.logger = workerLogger(options.logger, 'halfMessages');
    if (options.topics !== undefined && !Array.isArray(options.topics))
      throw new ConfigError('halfMessages.topics', 'must be an array of topics');
    this.topics = (options.topics ?? []).map((t, i) => userTopicName(t, `halfMessages.topics[${i}]`));
    this.events = new WorkerEvents(this.logger, "the half messages'", 'half messages', { group: this.group });
  }

  async start(): Promise<void> {
    const native = (this.options.producer as { [NATIVE_TRANSACTIONS]?: NativeTransactions })[
      NATIVE_TRANSACTIONS
    ];
    if (native !== undefined) {
      // The broker's schedule applies: options that would look like they change it are refused.
      for (const key of ['immunityMs', 'checkIntervalMs', 'maxChecks'] as const)
        if (this.options[key] !== undefined)
          throw new UnsupportedError(
            `halfMessages.${key}: native half messages (RocketMQ) are checked on the broker's schedule (transactionTimeOut, transactionCheckInterval, transactionCheckMax in broker.conf)`,
          );
      // Half messages live in the broker, which asks the group's live producers; the table
      // holds none, so neither the relay nor the table's checker runs.
      const group = native.open(this.group, (half) => this.checkNative(half));
      if (this.topics.length > 0)
        try {
          await group.publishTo(this.topics);
        } catch (error) {
          await group.close();
          throw error;
        }
      this.native = group;
      return;
    }
    const relay = this.options.relay ?? true;
    if (relay !== false) {
      try {
        this.relay = await startOutboxRelay({
          ...(relay === true ? {} : relay),
          pool: this.pool,
          producer: this.options.producer,
          table: this.table,
          logger: this.logger,
        });
      } catch (error) {
        // Name the field as the caller wrote it: halfMessages.relay.x, or halfMessages.table.
        if (error instanceof ConfigError && error.field.startsWith('outboxRelay.')) {
          const rest = error.field.slice('outboxRelay.'.length);
          const own = RELAY_OWN_KEYS.includes(rest.split('.')[0] as string);
          const field = `halfMessages.${own ? '' : 'relay.'}${rest}`;
          throw new ConfigError(field, error.message.slice(error.field.length + 2), { cause: error });
        }
        throw error;
      }
    }
    this.loop = this.run();
  }

  on<E extends keyof HalfMessageEvents>(
    event: E,
    listener: (event: HalfMessageEvents[E]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  private emit<E extends keyof HalfMessageEvents>(event: E, payload: HalfMessageEvents[E]): void {
    this.events.emit(event, payload);
  }

  async sendInTransaction<T>(
    message: OutgoingMessage<T>,
    localTransaction: (
      message: HalfMessage<NoInfer<T>>,
    ) => LocalTransactionState | Promise<LocalTransactionState>,
    options: { immunityMs?: number } = {},
  ): Promise<TransactionSendResult> {
    if (typeof localTransaction !== 'function') {
      throw new ConfigError('sendInTransaction.localTransaction', 'must be a function');
    }
    if (this.closed) throw new ClosedError(`the half messages of group ${this.group} are closed`);
    refuseUnknownKeys(options, ['immunityMs'], 'sendInTransaction.options.');
    const immunityMs = intOption(
      options.immunityMs,
      'sendInTransaction.options.immunityMs',
      0,
      this.immunityMs,
      MAX_TIMER_MS,
    );
    if (this.native !== undefined) {
      if (options.immunityMs !== undefined)
        throw new UnsupportedError(
          "sendInTransaction.options.immunityMs: native half messages (RocketMQ) are first checked after the broker's transactionTimeOut",
        );
      return this.sendNative(message, localTransaction);
    }
    // Stored and committed before the local transaction runs: a crash from here on leaves a
    // prepared message for the checker, never a local change without its message.
    const [stored] = await insertRows(this.pool, this.table, [message as OutgoingMessage<unknown>], {
      group: this.group,
      checkAfterMs: immunityMs,
    });
    const id = stored as string;
    const { state, error } = await runLocalTransaction(localTransaction, message, id);
    if (state === 'unknown') return { id, state: 'prepared', ...(error === undefined ? {} : { error }) };
    await this.decide(id, state, ['prepared']);
    const now = await this.state(id);
    return { id, state: now ?? 'committed' };
  }

  /** Records a decision if the message is still in one of `from`; resolves whether it was. */
  private async decide(
    id: string,
    decision: 'commit' | 'rollback',
    from: readonly string[],
  ): Promise<boolean> {
    const result = await this.pool.query(
      decision === 'commit'
        ? `WITH d AS (
             UPDATE ${this.table} SET status = 'pending', next_attempt_at = now(), check_at = NULL
             WHERE id = $1 AND check_group = $2 AND status = ANY($3::text[]) RETURNING 1
           ) SELECT count(*)::int AS n, pg_notify($4, '') FROM d`
        : `WITH d AS (
             UPDATE ${this.table} SET status = 'rolled_back', check_at = NULL
             WHERE id = $1 AND check_group = $2 AND status = ANY($3::text[]) RETURNING 1
           ) SELECT count(*)::int AS n, $4::text FROM d`,
      [id, this.group, from, channelOf(this.table)],
    );
    const done = (result.rows[0]?.n ?? 0) > 0;
    if (done) this.emit('resolved', { id, state: decision === 'commit' ? 'committed' : 'rolled-back' });
    return done;
  }

  async state(id: string): Promise<HalfMessageState | undefined> {
    // Native half messages live in the broker, which cannot be asked about one.
    if (this.native !== undefined) return undefined;
    const { rows } = await this.pool.query(
      `SELECT status FROM ${this.table} WHERE id = $1 AND check_group = $2 ORDER BY seq DESC LIMIT 1`,
      [id, this.group],
    );
    return rows[0] === undefined ? undefined : STATES[rows[0].status as string];
  }

  async unresolved(options: { limit?: number } = {}) {
    refuseUnknownKeys(options, ['limit'], 'unresolved.');
    const limit = intOption(options.limit, 'unresolved.limit', 1, 100, 100_000);
    // Native: the broker discards a message still undecided after its last check.
    if (this.native !== undefined) return [];
    const { rows } = await this.pool.query(
      `SELECT id, topic, checks, last_error FROM ${this.table}
       WHERE status = 'unresolved' AND check_group = $1 ORDER BY seq LIMIT $2`,
      [this.group, limit],
    );
    return rows.map((r) => ({
      id: r.id as string,
      topic: r.topic as string,
      checks: r.checks as number,
      lastError: (r.last_error ?? undefined) as string | undefined,
    }));
  }

  resolve(id: string, decision: 'commit' | 'rollback'): Promise<boolean> {
    if (decision !== 'commit' && decision !== 'rollback') {
      throw new ConfigError('resolve.decision', `must be 'commit' or 'rollback'`);
    }
    // Native: only the broker's check decides an undecided half message.
    if (this.native !== undefined) return Promise.resolve(false);
    return this.decide(id, decision, ['prepared', 'unresolved']);
  }

  private async run(): Promise<void> {
    let lastCleanup = 0;
    while (!this.closed) {
      try {
        await this.checkDue();
        const { rows } = await this.pool.query(
          `SELECT count(*)::int AS n FROM ${this.table} WHERE status = 'prepared' AND check_group = $1`,
          [this.group],
        );
        this.emit('prepared', { group: this.group, count: rows[0]?.n ?? 0 });
        if (Date.now() - lastCleanup > 60_000) {
          lastCleanup = Date.now();
          // Bounded statements until a short one: a backlog is cleared, a step at a time.
          for (;;) {
            const deleted = await this.pool.query(
              `DELETE FROM ${this.table} WHERE seq IN (
                 SELECT seq FROM ${this.table} WHERE status = 'rolled_back' AND check_group = $1
                   AND created_at < now() - $2::interval LIMIT $3 FOR UPDATE SKIP LOCKED)`,
              [this.group, `${this.keepRolledBackMs} milliseconds`, CLEANUP_BATCH],
            );
            if ((deleted.rowCount ?? 0) < CLEANUP_BATCH || this.closed) break;
          }
        }
      } catch (error) {
        if (this.closed) break;
        this.events.report(error, 'check scan failed; trying again');
      }
      await sleep(this.scanMs, this.stop.signal);
    }
  }

  /** Claims due prepared messages (moving their next check one interval on) and asks the application. */
  private async checkDue(): Promise<void> {
    for (;;) {
      const { rows } = (await this.pool.query(
        `UPDATE ${this.table} SET checks = checks + 1, check_at = now() + $2::interval
         WHERE seq IN (
           SELECT seq FROM ${this.table}
           WHERE status = 'prepared' AND check_group = $1 AND check_at <= now()
           ORDER BY check_at LIMIT 50 FOR UPDATE SKIP LOCKED)
         RETURNING seq, id, topic, key, tag, headers, content_type, payload, checks`,
        [this.group, `${this.intervalMs} milliseconds`],
      )) as { rows: HalfRow[] };
      if (rows.length === 0 || this.closed) return;
      await Promise.all(rows.map((row) => this.checkOne(row)));
      if (rows.length < 50) return;
    }
  }

  private async checkOne(row: HalfRow): Promise<void> {
    let state: LocalTransactionState = 'unknown';
    let error: unknown;
    try {
      const message: HalfMessage = {
        id: row.id,
        topic: row.topic,
        body: bodyOf(row),
        key: row.key ?? undefined,
        tag: row.tag ?? undefined,
        headers: row.headers,
        contentType: row.content_type,
        checks: row.checks,
      };
      const answer = await this.check(message);
      if (answer === 'commit' || answer === 'rollback' || answer === 'unknown') state = answer;
      else
        throw new ConfigError(
          'checkLocalTransaction',
          `must return 'commit', 'rollback' or 'unknown' (got ${String(answer)})`,
        );
    } catch (thrown) {
      error = thrown;
    }
    this.emit('checked', {
      id: row.id,
      checks: row.checks,
      state,
      ...(error === undefined ? {} : { error }),
    });
    if (state !== 'unknown') {
      await this.decide(row.id, state, ['prepared']);
      return;
    }
    if (row.checks < this.maxChecks) return;
    const why =
      error === undefined
        ? `no decision after ${row.checks} checks (each answered 'unknown')`
        : `no decision after ${row.checks} checks; the last threw: ${thrownText(error)}`;
    const parked = await this.pool.query(
      `UPDATE ${this.table} SET status = 'unresolved', last_error = $3, check_at = NULL
       WHERE seq = $1 AND check_group = $2 AND status = 'prepared'`,
      [row.seq, this.group, why.slice(0, 2000)],
    );
    if ((parked.rowCount ?? 0) > 0) {
      this.emit('resolved', { id: row.id, state: 'unresolved' });
      safeLog(
        this.logger,
        'error',
        { id: row.id, group: this.group },
        `half message ${row.id} parked: ${why}`,
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop.abort();
    await this.loop;
    await this.relay?.close();
    await this.native?.close();
  }

  /** `sendInTransaction` on the broker's own transactional messages. */
  private async sendNative<T>(
    message: OutgoingMessage<T>,
    localTransaction: (message: HalfMessage<T>) => LocalTransactionState | Promise<LocalTransactionState>,
  ): Promise<TransactionSendResult> {
    let error: unknown;
    const { id, decision, endError } = await (this.native as NativeTransactionGroup).send(
      message as OutgoingMessage<unknown>,
      async (id) => {
        const outcome = await runLocalTransaction(localTransaction, message, id);
        error = outcome.error;
        return outcome.state;
      },
    );
    // The local transaction ran; its decision did not reach the broker, whose checks decide.
    if (endError !== undefined)
      this.events.report(endError, `ending the transaction of ${id} (a check will decide)`);
    if (decision !== 'unknown')
      this.emit('resolved', { id, state: decision === 'commit' ? 'committed' : 'rolled-back' });
    const state: HalfMessageState =
      decision === 'commit' ? 'committed' : decision === 'rollback' ? 'rolled-back' : 'prepared';
    return { id, state, ...(error === undefined ? {} : { error }) };
  }

  /** Answers the broker's check of a half message (any member of the group may be asked). */
  private async checkNative(half: NativeHalf): Promise<LocalTransactionState> {
    const row = {
      id: half.id,
      topic: half.topic,
      key: half.key ?? null,
      tag: half.tag ?? null,
      headers: half.headers,
      content_type: half.contentType,
      payload: Buffer.from(half.payload),
      checks: half.checks,
    } as HalfRow;
    let state: LocalTransactionState;
    let error: unknown;
    try {
      state = await this.check({
        id: half.id,
        topic: half.topic,
        body: bodyOf(row),
        contentType: half.contentType,
        key: half.key,
        tag: half.tag,
        headers: half.headers,
        checks: half.checks,
      });
      if (state !== 'commit' && state !== 'rollback' && state !== 'unknown') state = 'unknown';
    } catch (thrown) {
      state = 'unknown';
      error = thrown;
    }
    this.emit('checked', {
      id: half.id,
      checks: half.checks,
      state,
      ...(error === undefined ? {} : { error }),
    });
    if (state !== 'unknown')
      this.emit('resolved', { id: half.id, state: state === 'commit' ? 'committed' : 'rolled-back' });
    return state;
  }
}

/**
 * Starts a transactional producer: RocketMQ's half messages on any broker. Half messages are
 * rows of the outbox table (`ensureOutbox`) in a 'prepared' state, which no relay publishes;
 * committing one makes it an ordinary pending outbox row. It runs a checker for its `group`
 * (and, by default, an outbox relay with `producer`). Several processes of one group share the
 * checks: each due message is claimed by one of them with a row lock (`FOR UPDATE SKIP
 * LOCKED`), and its next check is moved one interval on before the application is asked, so a
 * checker that dies mid-check delays that message by one interval.
 *
 * On a RocketMQ producer, half messages are RocketMQ's own transactional messages instead: the
 * broker stores them, invisible to consumers, and asks a live producer of the group (one that
 * sent to the message's topic, in any process) with `checkLocalTransaction`, on the broker's
 * schedule (`transactionTimeOut`, `transactionCheckInterval` and `transactionCheckMax` in
 * broker.conf; `immunityMs`, `checkIntervalMs` and `maxChecks` are refused with
 * `UnsupportedError`, the relay does not run, and `pool` is not written to). A member answers
 * checks for the topics it sent to since it started and those in `topics`: list them, so
 * that after a restart a message is not discarded after `transactionCheckMax` checks for want
 * of a member that answers. A check that reaches the sender while its local transaction still
 * runs is answered 'unknown' (another process of the group cannot know, and asks
 * `checkLocalTransaction`). If the decision cannot be delivered, `sendInTransaction` resolves
 * with 'prepared' and reports the error (logger and 'error' event): a check decides.
 *
 * Not atomic with the local transaction: as in RocketMQ, the local transaction commits on its
 * own and the check is what reconciles a crash in between. If the local transaction writes to
 * the same PostgreSQL, `createOutbox().add` in that transaction is the simpler tool.
 */
export async function halfMessages(options: HalfMessagesOptions): Promise<TransactionalProducer> {
  const producer = new HalfMessages(options);
  await producer.start();
  return producer;
}

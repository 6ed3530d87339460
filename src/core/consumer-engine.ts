import { setMaxListeners } from 'node:events';
import type { Subscription } from './broker.js';
import {
  failureOutcome,
  isDelivery,
  type Outcome,
  prepareDelivery,
  type ReceivedRecord,
  type TagFilter,
} from './dispatch.js';
import { ClosedError, isMqError } from './errors.js';
import type { DeliveryEvent, EventHub } from './events.js';
import { KeyedExecutor } from './keyed-executor.js';
import { type Logger, safeLog } from './logger.js';
import type { BatchHandler, Delivery, Handler, Headers } from './message.js';
import {
  backoffDelay,
  MAX_CONCURRENCY,
  type ResolvedSubscribeOptions,
  refuseCloseOptions,
  thrownText,
} from './options.js';
import { settlesWithin, sleep } from './timers.js';
import { applicationHeaders, H } from './wire.js';

/** A retry copy the engine asks a transport to publish. */
export interface RetryCopy {
  /** The attempt the copy will be delivered as (`mq-attempt`). */
  readonly attempt: number;
  /** Deliver it no earlier than this from now. */
  readonly delayMs: number;
}

/**
 * What an adapter implements for one subscription: it moves records between the broker and the
 * engine, and the engine does everything else (lanes, the handler, retry, dead-letter, drain,
 * abort). The engine calls these methods; the transport calls the engine's `assign`, `deliver`
 * and `revoke`.
 *
 * Every record handed to `deliver` is settled exactly once, by the engine, with `settle`.
 */
export interface ConsumerTransport<R extends ReceivedRecord = ReceivedRecord> {
  /**
   * Joins the group (or starts consuming) and starts delivering. Resolves once a message sent
   * after it resolved reaches this subscription or another member of its group. A rejection
   * fails `subscribe`; the engine then calls `close` to release what was set up.
   */
  start(engine: ConsumerEngine<R>): Promise<void>;
  /**
   * The engine is done with a record:
   * - `'ack'`: handled, filtered out, or its retry or dead-letter copy was published. Commit it
   *   (offsets: the lowest unfinished one of its partition; queues: basic.ack).
   * - `'requeue'`: given up without a result (revoked, closing, or its drain timed out). It
   *   must be delivered again: leave the offset uncommitted, or leave it unacknowledged (closing
   *   the channel returns it) or nack it.
   * Called in no particular order across records; must not throw.
   */
  settle(record: R, settlement: 'ack' | 'requeue'): void;
  /**
   * Publishes a copy of the record that will be delivered to this group again as
   * `copy.attempt` after `copy.delayMs`, confirmed before resolving; the engine then acks the
   * original. Used only with order 'concurrent' (a copy would overtake later messages of the
   * key). Absent: retries wait in this process, the record unacknowledged meanwhile. On
   * rejection the engine logs it and retries in this process.
   */
  publishRetry?(record: R, copy: RetryCopy): Promise<void>;
  /**
   * Publishes the record to `topic` with `headers` (the original's, with the error recorded),
   * confirmed before resolving; the engine then acks the original. On rejection the engine
   * tries again with back-off, the original unacknowledged, until it succeeds or the record is
   * revoked or the subscription closes.
   */
  publishDeadLetter(record: R, topic: string, headers: Headers): Promise<void>;
  /**
   * A retry in this process is starting: the record will be delivered as `attempt`. For
   * transports that remember attempts beyond one delivery (optional).
   */
  retrying?(record: R, attempt: number): void;
  /**
   * `setConcurrency` changed the number of handlers that may run at once: a transport whose
   * prefetch follows concurrency adjusts it (optional).
   */
  concurrencyChanged?(concurrency: number): void;
  /**
   * Closing, step 1, before the engine drains: stop taking new records (pause fetching, cancel
   * consumers). Records delivered afterwards are settled with 'requeue'.
   */
  stopDelivering(): Promise<void> | void;
  /**
   * Closing, step 2, after handlers finished or their drain timed out: commit, leave the group,
   * release the broker's resources. `timeLeftMs` is what remains of the close timeout (it may be
   * 0; steps that must happen get a floor of their own). Must not throw.
   */
  close(timeLeftMs: number): Promise<void>;
}

/**
 * One partition (or queue) a transport delivers from, from `assign` to `revoke`. Its records
 * are ordered among themselves; lanes (order 'key' and 'partition') never span two claims.
 */
export class Claim {
  /** Aborted on revoke: queued records are dropped, retry waits end. */
  readonly stopped = new AbortController();
  /** Aborted when a revoke or close gave up waiting for handlers; part of their `signal`. */
  readonly abandoned = new AbortController();
  /** The handlers' `signal`. */
  readonly signal: AbortSignal;
  /** Records of this claim whose handling started and has not ended (retry waits included). */
  running = 0;
  /** Batch mode: records waiting to make up a batch. */
  buffer: ReceivedRecord[] = [];
  bufferTimer: NodeJS.Timeout | undefined;
  flushQueued = false;
  private idleWaiters: (() => void)[] = [];
  // `stopped.signal.aborted`, kept by an abort listener (which runs within abort()): read several
  // times per message, where AbortSignal's getter checks its receiver. Not so for `signal`: Node
  // keeps a signal made by AbortSignal.any alive while it has a listener and has not aborted, so
  // a listener there would keep every revoked claim in memory.
  private stoppedNow = false;

  constructor(
    /** Unique among the subscription's claims; the partition's lane. */
    readonly id: string,
    /** Partition or partition queue number, if the broker has them. */
    readonly partition: number | undefined,
    shutdown: AbortSignal,
  ) {
    this.signal = AbortSignal.any([this.abandoned.signal, shutdown]);
    // Every record waiting out a back-off listens to it: many at once are expected, not a leak.
    setMaxListeners(0, this.stopped.signal);
    this.stopped.signal.addEventListener('abort', () => (this.stoppedNow = true), { once: true });
  }

  get isStopped(): boolean {
    return this.stoppedNow;
  }

  /** @internal `signal.aborted`: the handlers' work is given up on. */
  get isGivenUp(): boolean {
    return this.signal.aborted;
  }

  /** @internal */
  started(): void {
    this.running++;
  }

  /** @internal */
  ended(): void {
    if (--this.running === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** @internal Resolves when nothing of this claim runs. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** What the engine needs besides its transport. */
export interface ConsumerEngineOptions {
  /** The adapter's kind, as in `Broker.kind`; reported in events. */
  broker: string;
  subscription: ResolvedSubscribeOptions;
  /** A `Handler`, or a `BatchHandler` when `subscription.batch` is set. */
  handler: Handler<unknown> | BatchHandler<unknown>;
  events: EventHub;
  logger: Logger;
  /** Where tags are filtered; see `TagFilter`. Default 'client'. */
  tagFilter?: TagFilter;
  /** Called once, after close finished (e.g. to forget the subscription). */
  onClosed?: () => void;
  /**
   * How background failures are logged, for adapters that scrub or level them their own way.
   * Default: `warn` on `logger`.
   */
  report?: (context: string, error: unknown) => void;
}

const NO_ERROR = Symbol('no error');

/**
 * The consumer side of a subscription, the same on every broker. It takes records from a
 * transport and owns what happens to them:
 *
 * - Lanes: records run in a `KeyedExecutor` of `concurrency` slots, one lane per claim
 *   (order 'partition'), per key within a claim ('key'; records without a key have none), or
 *   none ('concurrent'). A lane runs one record at a time, in delivery order.
 * - Outcomes: the handler resolving acks the record; throwing retries it after back-off (in
 *   this process, holding its lane but not its slot; or, with order 'concurrent' and a
 *   transport that can, by a copy that frees the record at once), then dead-letters it with
 *   the error in its headers. A body that cannot be decoded is dead-lettered at once.
 * - Drain and abort: `revoke` and `close` stop new work, wait (bounded) for running handlers,
 *   then abort their `signal`; a record whose handler was given up on is settled 'requeue'.
 * - Pause, resume and `setConcurrency` while running.
 * - Instrumentation events on the broker's `EventHub`.
 *
 * It implements `Subscription`: adapters return it from `subscribe`.
 */
export class ConsumerEngine<R extends ReceivedRecord = ReceivedRecord> implements Subscription {
  readonly topic: string;
  readonly group: string;
  private readonly options: ResolvedSubscribeOptions;
  private readonly executor: KeyedExecutor;
  private transport: ConsumerTransport<R> | undefined;
  private readonly tagFilter: TagFilter;
  /** Aborted when close starts: queued records are dropped, retry waits end. */
  private readonly closing = new AbortController();
  /** `closing.signal.aborted`, kept by its abort listener (read per message). */
  private closingNow = false;
  /** Aborted when close gave up waiting for handlers: their `signal` aborts. */
  private readonly shutdown = new AbortController();
  private readonly claims = new Map<string, Claim>();
  private starting: Promise<void> | undefined;
  private startSettled = false;
  private closed: Promise<void> | undefined;
  private markEnded: () => void = () => {};
  /** Resolves once the subscription closed, by `close` or by its broker closing. */
  readonly ended = new Promise<void>((resolve) => {
    this.markEnded = resolve;
  });
  /** How long a revoke waits for running handlers; close lowers it to what its timeout left. */
  private revokeWaitMs: number;
  private inFlightCount = 0;
  private isPaused = false;
  private readonly events: EventHub;

  constructor(private readonly config: ConsumerEngineOptions) {
    this.options = config.subscription;
    this.topic = this.options.topic;
    this.group = this.options.group;
    this.events = config.events;
    this.tagFilter = config.tagFilter ?? 'client';
    this.executor = new KeyedExecutor(this.options.concurrency);
    this.revokeWaitMs = this.options.closeTimeoutMs;
    setMaxListeners(0, this.closing.signal); // as Claim's `stopped`
    this.closing.signal.addEventListener('abort', () => (this.closingNow = true), { once: true });
  }

  /**
   * Starts `transport` and resolves with this subscription once it is ready. If it fails, or
   * the subscription is closed meanwhile, the transport is closed and the promise rejects.
   */
  async start(transport: ConsumerTransport<R>): Promise<this> {
    if (this.closing.signal.aborted) throw new ClosedError('subscription was closed before it started');
    this.transport = transport;
    this.starting = transport.start(this);
    try {
      await this.starting;
    } catch (error) {
      this.startSettled = true;
      this.closed ??= this.finish(0, false);
      await this.closed;
      throw error;
    }
    this.startSettled = true;
    if (this.closing.signal.aborted) {
      await this.closed;
      throw new ClosedError(`subscription to ${this.topic} (group ${this.group}) was closed while starting`);
    }
    return this;
  }

  /** The subscription's options, resolved. */
  get subscription(): ResolvedSubscribeOptions {
    return this.options;
  }

  /** True once close started: transports stop fetching. */
  get isClosing(): boolean {
    return this.closingNow;
  }

  /** Records delivered and not yet settled (queued, running, waiting to retry or in a batch). */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Handlers (or batches) that may run at once. */
  get concurrency(): number {
    return this.executor.limit;
  }

  /**
   * Changes handler concurrency while running, within 1 and {@link MAX_CONCURRENCY}. Per-key
   * order holds at any value: more keys run in parallel, never one key twice.
   */
  setConcurrency(concurrency: number): void {
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
      throw new RangeError(`concurrency must be an integer from 1 to ${MAX_CONCURRENCY}`);
    }
    this.executor.setConcurrency(concurrency);
    this.transport?.concurrencyChanged?.(concurrency);
  }

  /**
   * Starts no new handler until `resume`; running ones finish. Records keep arriving up to the
   * transport's prefetch, then the broker holds the rest.
   */
  pause(): void {
    this.isPaused = true;
    this.executor.pause();
  }

  resume(): void {
    this.isPaused = false;
    this.executor.resume();
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /**
   * A partition (or queue) this subscription now reads. `id` must be unique among its claims
   * (e.g. `topic:partition`); a second assign of a live id returns the live claim.
   */
  assign(id: string, partition: number | undefined): Claim {
    const live = this.claims.get(id);
    if (live !== undefined) return live;
    const claim = new Claim(id, partition, this.shutdown.signal);
    this.claims.set(id, claim);
    if (partition !== undefined && this.events.has('rebalanced'))
      this.events.emit('rebalanced', { ...this.groupFields(), assigned: [partition], revoked: [] });
    return claim;
  }

  /**
   * Stops handing out the claim's records, ends its retry waits, and resolves once its running
   * handlers finished, or after `waitMs` (default: the subscription's `closeTimeoutMs`, or what
   * a close left of its timeout), when their `signal` is aborted. Their records are settled
   * 'requeue'. Idempotent.
   */
  async revoke(claim: Claim, waitMs: number = this.revokeWaitMs): Promise<void> {
    if (this.claims.get(claim.id) === claim) this.claims.delete(claim.id);
    if (!claim.isStopped) {
      claim.stopped.abort();
      this.dropBuffer(claim);
      if (claim.partition !== undefined && this.events.has('rebalanced'))
        this.events.emit('rebalanced', { ...this.groupFields(), assigned: [], revoked: [claim.partition] });
    }
    if (claim.running === 0) return;
    // No wait at all: abort now, so no handler that finishes meanwhile commits or dead-letters.
    if (waitMs <= 0 || !(await settlesWithin(claim.idle(), waitMs))) claim.abandoned.abort();
  }

  /** For transports that commit positions: reports a commit as a `committed` event. */
  committed(partition: number, offset: string | number): void {
    // A number is turned into the event's string only when someone listens (a per-ack caller).
    if (this.events.has('committed'))
      this.events.emit('committed', { ...this.groupFields(), partition, offset: String(offset) });
  }

  /** Claims assigned and not revoked. */
  get assigned(): ReadonlyMap<string, Claim> {
    return this.claims;
  }

  /**
   * Hands a record of `claim` to the engine. Never waits and never throws; the record is settled
   * later, once. Records of one claim must be delivered in their stored order.
   */
  deliver(claim: Claim, record: R): void {
    this.inFlightCount++;
    if (this.options.batch !== undefined) {
      this.buffer(claim, record);
      return;
    }
    this.executor.submit(this.lane(claim, record), this.processTask, claim, record);
  }

  /**
   * Reports a failure nobody awaits: through the adapter's `report` if it gave one, else at
   * `warn` on the logger (with the error's `code`); and as an `error` event.
   */
  report(context: string, error?: unknown): void {
    if (this.config.report !== undefined) this.config.report(context, error);
    else {
      const code = isMqError(error) ? error.code : undefined;
      const text = error === undefined ? context : `${context}: ${thrownText(error)}`;
      safeLog(this.config.logger, 'warn', { topic: this.topic, group: this.group, code }, text);
    }
    if (this.events.has('error'))
      this.events.emit('error', { broker: this.config.broker, error: error ?? new Error(context), context });
  }

  /**
   * Stops taking new deliveries, waits up to `timeoutMs` for handlers in flight, then aborts the
   * ones still running and has the transport commit what finished and leave. A second call
   * returns the first call's promise.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const refused = refuseCloseOptions(options);
    if (refused) return refused;
    this.closed ??= this.finish(options.timeoutMs ?? this.options.closeTimeoutMs, true);
    return this.closed;
  }

  private async finish(timeoutMs: number, started: boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.closing.abort();
    // Queued tasks must run to be dropped.
    if (this.isPaused) this.resume();
    for (const claim of this.claims.values()) this.dropBuffer(claim);
    const transport = this.transport;
    try {
      // Closed while starting: the transport stops once its start settled.
      if (started && !this.startSettled && this.starting !== undefined) await this.starting.catch(() => {});
      if (transport !== undefined) await transport.stopDelivering();
    } catch (error) {
      this.report('stopping delivery while closing failed', error);
    }
    const drained = await settlesWithin(this.executor.onIdle(), Math.max(0, deadline - Date.now()));
    if (!drained) this.shutdown.abort();
    this.revokeWaitMs = drained ? Math.max(0, deadline - Date.now()) : 0;
    try {
      await transport?.close(Math.max(0, deadline - Date.now()));
    } catch (error) {
      this.report('closing the subscription failed', error);
    }
    this.config.onClosed?.();
    this.markEnded();
  }

  private lane(claim: Claim, record: ReceivedRecord): string | undefined {
    switch (this.options.order) {
      case 'partition':
        return claim.id;
      case 'key':
        return record.key === undefined ? undefined : `${claim.id}\u0000${record.key}`;
      default:
        return undefined;
    }
  }

  private settle(record: R, settlement: 'ack' | 'requeue'): void {
    this.inFlightCount--;
    (this.transport as ConsumerTransport<R>).settle(record, settlement);
  }

  private get retriesByCopy(): boolean {
    return this.options.order === 'concurrent' && this.transport?.publishRetry !== undefined;
  }

  /**
   * A record's executor task: one function for every record, no closure per record. (Typed with
   * `ReceivedRecord`, not `R`, so that the engine's type stays bivariant in `R`.)
   *
   * The common case (decoded synchronously, nobody listening to message events, the handler
   * succeeding) runs here, outside `process`, for any delivery, a redelivered attempt too: a
   * message then costs one small await, or none when the handler returns nothing. Anything
   * else continues in `process` (after a failure: `afterFirstFailure`), with the same outcome
   * as if it had run there from the start.
   */
  private readonly processTask = (claim: Claim, received: ReceivedRecord): Promise<void> | undefined => {
    const record = received as R;
    if (claim.isStopped || this.closingNow || this.observed) return this.process(claim, record);
    const prepared = prepareDelivery(record, this.options, claim.signal, this.tagFilter);
    if (prepared instanceof Promise || !isDelivery(prepared)) return this.process(claim, record, prepared);
    claim.started();
    let result: unknown;
    try {
      result = (this.config.handler as Handler<unknown>)(prepared);
    } catch (error) {
      return this.afterFirstFailure(claim, record, prepared, error);
    }
    if (result === undefined) {
      this.afterFirstSuccess(claim, record);
      return undefined;
    }
    // The executor awaits the handler's promise (or thenable) and then calls `afterHandler`:
    // no closure, async frame or second promise per message. The delivery is not kept: after a
    // failure the 'failed' event is built from the record, with the same fields.
    this.executor.continueWith(this.afterHandler);
    return result as Promise<void>;
  };
  private readonly afterHandler = (
    claim: Claim,
    received: ReceivedRecord,
    failed: boolean,
    error: unknown,
  ): Promise<void> | undefined => {
    if (failed) return this.afterFirstFailure(claim, received as R, undefined, error);
    this.afterFirstSuccess(claim, received as R);
    return undefined;
  };
  private readonly processBatchTask = (claim: Claim, batch: ReceivedRecord[]): Promise<void> =>
    this.processBatch(claim, batch as R[]);

  private get observed(): boolean {
    return this.events.has('delivered') || this.events.has('handled') || this.events.has('failed');
  }

  private afterFirstSuccess(claim: Claim, record: R): void {
    // Given up on (revoke or close timed out): not acknowledged; delivered again.
    this.settle(record, claim.isGivenUp ? 'requeue' : 'ack');
    claim.ended();
  }

  /** The handler failed when `processTask` ran it: goes on as `process` does after a failure. */
  private async afterFirstFailure(
    claim: Claim,
    record: R,
    delivery: Delivery<unknown> | undefined,
    error: unknown,
  ): Promise<void> {
    let again = false;
    try {
      if (claim.signal.aborted) {
        this.settle(record, 'requeue');
        return;
      }
      const outcome = failureOutcome(record, this.options, error);
      again = await this.settleOutcome(claim, record, outcome, delivery, 0);
    } finally {
      if (!again) claim.ended();
    }
    // Settled (dead-lettered, copied for a retry, given up): done. Else its retry runs now.
    if (again) await this.process(claim, record, undefined, true);
  }

  /**
   * Handles a record until it is settled: attempts, retries, dead-letter. `prepared` is
   * `prepareDelivery`'s result for the first pass, if `processTask` made it already; `started`
   * is true when the record already holds its claim's `started()` (an in-process retry after
   * `afterFirstFailure`).
   */
  private async process(
    claim: Claim,
    record: R,
    prepared?: ReturnType<typeof prepareDelivery>,
    started = false,
  ): Promise<void> {
    if (!started && (claim.isStopped || this.closing.signal.aborted)) {
      this.settle(record, 'requeue');
      return;
    }
    if (!started) claim.started();
    let first = prepared;
    try {
      for (;;) {
        let prepared = first ?? prepareDelivery(record, this.options, claim.signal, this.tagFilter);
        first = undefined;
        if (prepared instanceof Promise) prepared = await prepared;
        if (!isDelivery(prepared)) {
          await this.settleOutcome(claim, record, prepared, undefined, 0);
          return;
        }
        const delivery = prepared;
        const observed =
          this.events.has('delivered') || this.events.has('handled') || this.events.has('failed');
        const startedAt = observed ? performance.now() : 0;
        if (observed) this.events.emit('delivered', this.deliveryEvent(delivery));
        let error: unknown = NO_ERROR;
        try {
          const result = (this.config.handler as Handler<unknown>)(delivery);
          if (result !== undefined) await result; // a thenable of any kind, not only a native Promise
        } catch (thrown) {
          error = thrown;
        }
        // Given up on (revoke or close timed out): not acknowledged; delivered again.
        if (claim.signal.aborted) {
          this.settle(record, 'requeue');
          return;
        }
        const durationMs = observed ? performance.now() - startedAt : 0;
        if (error === NO_ERROR) {
          if (observed) this.events.emit('handled', { ...this.deliveryEvent(delivery), durationMs });
          this.settle(record, 'ack');
          return;
        }
        const outcome = failureOutcome(record, this.options, error);
        if (!(await this.settleOutcome(claim, record, outcome, delivery, durationMs))) return;
      }
    } finally {
      claim.ended();
    }
  }

  /**
   * Carries out an outcome other than a handler's success. Returns true when the record is to be
   * handled again now (an in-process retry whose wait ended), false when it was settled.
   */
  private async settleOutcome(
    claim: Claim,
    record: R,
    outcome: Outcome,
    delivery: Delivery<unknown> | undefined,
    durationMs: number,
  ): Promise<boolean> {
    switch (outcome.kind) {
      case 'ack':
      case 'skip':
        this.settle(record, 'ack');
        return false;
      case 'dead-letter':
        this.emitFailed(record, delivery, outcome.error, durationMs, 'dead-letter');
        await this.deadLetter(claim, record, outcome);
        return false;
      case 'retry': {
        this.emitFailed(record, delivery, outcome.error, durationMs, 'retry');
        if (this.retriesByCopy && (await this.copyForRetry(record, outcome))) return false;
        if (!(await this.waitToRetry(claim, [{ record, attempt: outcome.attempt }], outcome.delayMs))) {
          this.settle(record, 'requeue');
          return false;
        }
        record.attempt = outcome.attempt;
        return true;
      }
    }
  }

  /** True once the retry copy is published and the record acked; false if it must retry here. */
  private async copyForRetry(record: R, outcome: Extract<Outcome, { kind: 'retry' }>): Promise<boolean> {
    try {
      await (this.transport as Required<ConsumerTransport<R>>).publishRetry(record, {
        attempt: outcome.attempt,
        delayMs: outcome.delayMs,
      });
    } catch (error) {
      this.report(
        `subscription to ${this.topic} (group ${this.group}): the retry copy was not published, retrying in this process`,
        error,
      );
      return false;
    }
    if (this.events.has('retried'))
      this.events.emit('retried', {
        ...this.recordEvent(record, outcome.attempt),
        delayMs: outcome.delayMs,
        via: 'copy',
      });
    this.settle(record, 'ack');
    return true;
  }

  /**
   * Waits out a retry's back-off without holding a slot (the lane stays held). False if the
   * claim was revoked or the subscription started closing meanwhile.
   */
  private async waitToRetry(
    claim: Claim,
    retries: readonly { record: R; attempt: number }[],
    delayMs: number,
  ): Promise<boolean> {
    for (const { record, attempt } of retries) {
      this.transport?.retrying?.(record, attempt);
      if (this.events.has('retried'))
        this.events.emit('retried', { ...this.recordEvent(record, attempt), delayMs, via: 'in-process' });
    }
    if (
      delayMs > 0 &&
      !(await this.executor.releaseWhile(sleep(delayMs, claim.stopped.signal, this.closing.signal)))
    )
      return false;
    // The wait for a slot after the back-off may outlast a revoke or the start of close.
    return !claim.isStopped && !this.closing.signal.aborted;
  }

  private async deadLetter(
    claim: Claim,
    record: R,
    outcome: Extract<Outcome, { kind: 'dead-letter' }>,
  ): Promise<void> {
    const topic = outcome.topic;
    for (let failures = 1; topic !== undefined; failures++) {
      try {
        await (this.transport as ConsumerTransport<R>).publishDeadLetter(record, topic, outcome.headers);
        break;
      } catch (error) {
        this.report(
          `subscription to ${this.topic} (group ${this.group}): the dead-letter copy was not published to ${topic}, trying again`,
          error,
        );
        const wait = Math.max(DEAD_LETTER_RETRY_MIN_MS, backoffDelay(this.options.retry, failures));
        const waited = sleep(wait, claim.stopped.signal, this.closing.signal);
        if (!(await this.executor.releaseWhile(waited)) || claim.isStopped || this.closing.signal.aborted) {
          this.settle(record, 'requeue');
          return;
        }
      }
    }
    if (this.events.has('dead-lettered'))
      this.events.emit('dead-lettered', {
        ...this.recordEvent(record, record.attempt),
        deadLetterTopic: topic,
        error: outcome.error,
      });
    this.settle(record, 'ack');
  }

  // ---- batch handlers ----

  private buffer(claim: Claim, record: R): void {
    if (claim.isStopped || this.closing.signal.aborted) {
      this.settle(record, 'requeue');
      return;
    }
    const { maxSize, maxWaitMs } = this.options.batch as { maxSize: number; maxWaitMs: number };
    claim.buffer.push(record);
    if (claim.buffer.length >= maxSize) {
      this.flush(claim);
    } else if (maxWaitMs === 0) {
      if (!claim.flushQueued) {
        claim.flushQueued = true;
        // Records of one fetch arrive in one turn of the event loop: hand them over together.
        setImmediate(() => this.flush(claim));
      }
    } else if (claim.bufferTimer === undefined) {
      claim.bufferTimer = setTimeout(() => this.flush(claim), maxWaitMs);
    }
  }

  private flush(claim: Claim): void {
    claim.flushQueued = false;
    clearTimeout(claim.bufferTimer);
    claim.bufferTimer = undefined;
    const maxSize = (this.options.batch as { maxSize: number }).maxSize;
    const lane = this.options.order === 'concurrent' ? undefined : claim.id;
    while (claim.buffer.length > 0) {
      const records = claim.buffer.splice(0, maxSize) as R[];
      this.executor.submit(lane, this.processBatchTask, claim, records);
    }
  }

  private dropBuffer(claim: Claim): void {
    clearTimeout(claim.bufferTimer);
    claim.bufferTimer = undefined;
    const dropped = claim.buffer as R[];
    claim.buffer = [];
    for (const record of dropped) this.settle(record, 'requeue');
  }

  private async processBatch(claim: Claim, batch: R[]): Promise<void> {
    if (claim.isStopped || this.closing.signal.aborted) {
      for (const record of batch) this.settle(record, 'requeue');
      return;
    }
    claim.started();
    try {
      let round = batch;
      while (round.length > 0) {
        const records: R[] = [];
        const deliveries: Delivery<unknown>[] = [];
        // An index, not for-of: across the awaits below, an array iterator allocates per element.
        for (let i = 0; i < round.length; i++) {
          const record = round[i] as R;
          let prepared = prepareDelivery(record, this.options, claim.signal, this.tagFilter);
          if (prepared instanceof Promise) prepared = await prepared;
          if (isDelivery(prepared)) {
            records.push(record);
            deliveries.push(prepared);
          } else await this.settleOutcome(claim, record, prepared, undefined, 0);
        }
        if (deliveries.length === 0) return;
        round = await this.runBatch(claim, records, deliveries);
      }
    } finally {
      claim.ended();
    }
  }

  /** Runs the batch handler once; settles what succeeded or is dead-lettered, returns what runs again. */
  private async runBatch(claim: Claim, records: R[], deliveries: Delivery<unknown>[]): Promise<R[]> {
    if (this.events.has('delivered'))
      for (const d of deliveries) this.events.emit('delivered', this.deliveryEvent(d));
    const startedAt = performance.now(); // once per batch: cheap enough to measure whether or not anyone listens
    let all: unknown = NO_ERROR;
    let failures: ReadonlyMap<Delivery<unknown>, unknown> | undefined;
    try {
      const result = await (this.config.handler as BatchHandler<unknown>)(deliveries);
      if (result instanceof Map) failures = result;
    } catch (error) {
      all = error;
    }
    if (claim.signal.aborted) {
      for (const record of records) this.settle(record, 'requeue');
      return [];
    }
    // Checked after the handler: a listener may subscribe while it runs (mqkit/otel does at its first traced batch).
    const observed = this.events.has('handled') || this.events.has('failed');
    const durationMs = observed ? performance.now() - startedAt : 0;
    const ordered = this.options.order !== 'concurrent';
    const blocked = new Set<string>();
    const again: R[] = [];
    const retried: { record: R; attempt: number }[] = [];
    let delayMs = 0;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as R;
      const delivery = deliveries[i] as Delivery<unknown>;
      const lane = ordered ? this.lane(claim, record) : undefined;
      if (lane !== undefined && blocked.has(lane)) {
        again.push(record); // behind a failed message of its key: handed over again with it
        continue;
      }
      const error = all !== NO_ERROR ? all : failures?.has(delivery) ? failures.get(delivery) : NO_ERROR;
      if (error === NO_ERROR) {
        if (observed) this.events.emit('handled', { ...this.deliveryEvent(delivery), durationMs });
        this.settle(record, 'ack');
        continue;
      }
      const outcome = failureOutcome(record, this.options, error);
      if (outcome.kind === 'retry') {
        this.emitFailed(record, delivery, error, durationMs, 'retry');
        if (this.retriesByCopy && (await this.copyForRetry(record, outcome))) continue;
        if (lane !== undefined) blocked.add(lane);
        delayMs = Math.max(delayMs, outcome.delayMs);
        retried.push({ record, attempt: outcome.attempt });
        again.push(record);
      } else await this.settleOutcome(claim, record, outcome, delivery, durationMs);
    }
    if (again.length === 0) return [];
    if (!(await this.waitToRetry(claim, retried, delayMs))) {
      for (const record of again) this.settle(record, 'requeue');
      return [];
    }
    for (const { record, attempt } of retried) record.attempt = attempt;
    return again;
  }

  // ---- events ----

  private groupFields(): { broker: string; topic: string; group: string } {
    return { broker: this.config.broker, topic: this.topic, group: this.group };
  }

  private deliveryEvent(delivery: Delivery<unknown>): DeliveryEvent {
    return {
      broker: this.config.broker,
      topic: this.topic,
      group: this.group,
      partition: delivery.partition,
      offset: delivery.offset,
      id: delivery.id,
      key: delivery.key,
      attempt: delivery.attempt,
      headers: delivery.headers,
    };
  }

  private recordEvent(record: R, attempt: number): DeliveryEvent {
    return {
      broker: this.config.broker,
      topic: this.topic,
      group: this.group,
      partition: record.partition,
      offset: record.offset,
      id: record.headers[H.id] ?? '',
      key: record.key,
      attempt,
      headers: applicationHeaders(record.headers),
    };
  }

  private emitFailed(
    record: R,
    delivery: Delivery<unknown> | undefined,
    error: unknown,
    durationMs: number,
    next: 'retry' | 'dead-letter',
  ): void {
    if (!this.events.has('failed')) return;
    const base =
      delivery === undefined ? this.recordEvent(record, record.attempt) : this.deliveryEvent(delivery);
    this.events.emit('failed', { ...base, error, durationMs, next });
  }
}

/** Least wait between attempts to publish a dead letter. */
const DEAD_LETTER_RETRY_MIN_MS = 100;

/**
 * What the background workers on the outbox table share: the outbox relay (`startOutboxRelay`)
 * and the half-message checker (`halfMessages`). Both take a pg pool and an mqkit producer,
 * read the same message columns, and report failures nobody awaits the same way.
 */
import { ConfigError } from '../../core/errors.js';
import { Listeners } from '../../core/events.js';
import { isLogger, type Logger, processWarningLogger, safeLog } from '../../core/logger.js';
import type { Headers } from '../../core/message.js';
import { isPlainObject, refuseUnknownKeys, thrownText } from '../../core/options.js';

/** The columns of a stored message that a worker reads to publish or check it. */
export interface OutboxMessageRow {
  seq: string;
  id: string;
  topic: string;
  key: string | null;
  tag: string | null;
  headers: Headers;
  content_type: string;
  payload: Buffer;
}

/**
 * Checks what every worker's options must be, in this order, throwing `ConfigError` at the
 * first that fails: an options object (field `name`), no key outside `keys` (`name.key`), a pg
 * Pool as `pool`, an mqkit Producer as `producer` (`name.pool`, `name.producer`).
 */
export function checkWorkerOptions(options: unknown, keys: readonly string[], name: string): void {
  if (!isPlainObject(options)) throw new ConfigError(name, 'must be an options object');
  refuseUnknownKeys(options, keys, `${name}.`);
  if (typeof (options.pool as { connect?: unknown } | undefined)?.connect !== 'function')
    throw new ConfigError(`${name}.pool`, 'must be a pg Pool');
  if (typeof (options.producer as { sendBatch?: unknown } | undefined)?.sendBatch !== 'function') {
    throw new ConfigError(`${name}.producer`, 'must be an mqkit Producer');
  }
}

/**
 * A worker's `logger` option: the logger given, or the default (process warnings, as
 * `connect`'s) when undefined. Anything else throws `ConfigError` at `name.logger`.
 */
export function workerLogger(logger: unknown, name: string): Logger {
  if (logger === undefined) return processWarningLogger();
  if (!isLogger(logger))
    throw new ConfigError(`${name}.logger`, 'must have debug, info, warn and error methods');
  return logger;
}

/** The payload of a worker's 'error' event. */
export interface WorkerFailure {
  readonly error: unknown;
  readonly context: string;
}

/**
 * A worker's typed events (see {@link Listeners}), plus {@link WorkerEvents.report} for a
 * failure of a background step: the worker carries on, and the failure goes to the logger and
 * to the 'error' event. `Events['error']` must be exactly {@link WorkerFailure}.
 */
export class WorkerEvents<Events extends { error: WorkerFailure }> extends Listeners<Events> {
  /**
   * @param owner names the worker in a throwing listener's warning, e.g. "the outbox relay's".
   * @param label starts each reported failure's log message, e.g. 'outbox relay'.
   * @param fields go into each reported failure's log fields, e.g. `{ relayId }`.
   */
  constructor(
    private readonly log: Logger,
    owner: string,
    private readonly label: string,
    private readonly fields: Record<string, unknown>,
  ) {
    super(log, owner);
  }

  /** Logs `error` at `warn` as `<label>: <context>: <error>`, then emits 'error' `{ error, context }`. */
  report(error: unknown, context: string): void {
    safeLog(
      this.log,
      'warn',
      { err: error, context, ...this.fields },
      `${this.label}: ${context}: ${thrownText(error)}`,
    );
    this.emit('error', { error, context } as Events['error']);
  }
}

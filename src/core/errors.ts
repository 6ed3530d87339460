/**
 * Every error mqkit throws is an {@link MqError}. Branch on `code` (a closed union that only
 * grows in minor versions) and `retriable`, never on `message`, which is for humans.
 */
export type MqErrorCode =
  | 'CONFIG'
  | 'CONNECTION'
  | 'PUBLISH'
  | 'DECODE'
  | 'UNSUPPORTED'
  | 'TIMEOUT'
  | 'CLOSED'
  | 'CONFLICT';

export interface MqErrorOptions {
  cause?: unknown;
  /** Overrides the code's default: whether trying the same call again later can succeed. */
  retriable?: boolean;
}

/**
 * The brand every `MqError` carries (on its prototype, so not among its own keys): a global
 * symbol, shared by every copy of mqkit loaded in the process, which `isMqError` looks for.
 */
const MQ_ERROR = Symbol.for('mqkit.error');

/** Every code, so `isMqError` can tell a code from a look-alike (`ECONNREFUSED`, say). */
const CODES: Readonly<Record<MqErrorCode, true>> = {
  CONFIG: true,
  CONNECTION: true,
  PUBLISH: true,
  DECODE: true,
  UNSUPPORTED: true,
  TIMEOUT: true,
  CLOSED: true,
  CONFLICT: true,
};

/** Base class of every mqkit error. Test for one with {@link isMqError}, not `instanceof`. */
export class MqError extends Error {
  readonly code: MqErrorCode;
  /** True when the same operation may succeed if tried again (after a reconnect, a back-off). */
  readonly retriable: boolean;

  constructor(code: MqErrorCode, message: string, retriable: boolean, options: MqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? retriable;
  }
}

/** Bad options or URL. The message names the field and the fix. Never retriable. */
export class ConfigError extends MqError {
  /** Dotted path of the offending option, e.g. `retry.attempts`. */
  readonly field: string;
  constructor(field: string, message: string, options?: MqErrorOptions) {
    super('CONFIG', `${field}: ${message}`, false, options);
    this.field = field;
  }
}

/** The broker cannot be reached or the connection dropped. Retriable by default. */
export class ConnectionError extends MqError {
  constructor(message: string, options?: MqErrorOptions) {
    super('CONNECTION', message, true, options);
  }
}

/**
 * The broker did not accept a message. `retriable` says whether sending again can help
 * (a leader change, a dropped connection) or not (message too large, unroutable).
 * When thrown by `send`, the message may or may not have been stored: at-least-once, not exactly-once.
 */
export class PublishError extends MqError {
  constructor(message: string, options?: MqErrorOptions) {
    super('PUBLISH', message, true, options);
  }
}

/** A payload could not be decoded or failed its schema. Never retriable: the bytes will not change. */
export class DecodeError extends MqError {
  /** Issues reported by a Standard Schema validator, when that was the cause. */
  readonly issues: readonly { message: string; path?: readonly PropertyKey[] }[];
  constructor(
    message: string,
    options: MqErrorOptions & { issues?: readonly { message: string; path?: readonly PropertyKey[] }[] } = {},
  ) {
    super('DECODE', message, false, options);
    this.issues = options.issues ?? [];
  }
}

/** The broker (or this adapter) cannot do what was asked; see `Broker.capabilities`. */
export class UnsupportedError extends MqError {
  constructor(message: string, options?: MqErrorOptions) {
    super('UNSUPPORTED', message, false, options);
  }
}

/** An operation did not finish in time. Retriable by default; the outcome may be unknown. */
export class TimeoutError extends MqError {
  constructor(message: string, options?: MqErrorOptions) {
    super('TIMEOUT', message, true, options);
  }
}

/** The broker, producer or subscription was closed before or during the call. */
export class ClosedError extends MqError {
  constructor(message: string, options?: MqErrorOptions) {
    super('CLOSED', message, false, options);
  }
}

/** Someone else holds what this call needs right now (e.g. an idempotency lease). Retriable. */
export class ConflictError extends MqError {
  constructor(message: string, options?: MqErrorOptions) {
    super('CONFLICT', message, true, options);
  }
}

Object.defineProperty(MqError.prototype, MQ_ERROR, { value: true });

/**
 * Type guard that also narrows by code: `isMqError(e, 'PUBLISH')`. Recognises the errors of
 * every copy of mqkit in the process (two packages of an application may each install their
 * own), where `instanceof MqError` recognises only those of the copy it was imported from: it
 * checks the brand every `MqError` carries, a known `code` and a boolean `retriable`. An error
 * with a code this copy does not know (one added by a newer mqkit) is not recognised.
 */
export function isMqError(error: unknown, code?: MqErrorCode): error is MqError {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { [MQ_ERROR]?: unknown; code?: unknown; retriable?: unknown };
  return (
    e[MQ_ERROR] === true &&
    typeof e.code === 'string' &&
    Object.hasOwn(CODES, e.code) &&
    typeof e.retriable === 'boolean' &&
    (code === undefined || e.code === code)
  );
}

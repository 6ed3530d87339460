/**
 * The logger mqkit writes through: the shape of pino's (and bunyan's) methods, `(fields, message)`,
 * so a pino logger or a child of one can be passed as is. mqkit never writes to stdout or stderr
 * itself (the default, {@link processWarningLogger}, emits process warnings, which Node prints to
 * stderr unless the service handles them).
 *
 * Levels: `debug` for client-library chatter (kafkajs, amqplib), `info` for connection changes,
 * `warn` for failures mqkit recovers from, `error` for failures nobody awaits (a `sendOneWay`
 * without `onError`, a background loop that gave up).
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Drops every line. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Most distinct messages the default logger emits as process warnings; it remembers each one. */
export const MAX_PROCESS_WARNINGS = 100;

/**
 * The default logger: `warn` and `error` become one Node process warning (`process.emitWarning`,
 * type `MqkitWarning`) per distinct message, so a failure nobody awaits is not lost, and a
 * service decides where warnings go (`process.on('warning')`, `--no-warnings`; without either,
 * Node prints them to stderr). `debug` and `info` are dropped.
 *
 * It remembers the messages it emitted, at most {@link MAX_PROCESS_WARNINGS} (a bound on its
 * memory); the first distinct message past that bound is replaced by one last warning saying
 * that further ones are dropped and that a `logger` passed to `connect` gets them all.
 */
export function processWarningLogger(): Logger {
  const seen = new Set<string>();
  let full = false;
  const warn = (fields: Record<string, unknown>, message: string): void => {
    if (full || seen.has(message)) return;
    if (seen.size >= MAX_PROCESS_WARNINGS) {
      full = true;
      process.emitWarning(
        `mqkit emitted ${MAX_PROCESS_WARNINGS} distinct warnings; further distinct messages are dropped. Pass a logger to connect (connect(url, { logger })) to receive every one`,
        { type: 'MqkitWarning', code: 'MQKIT_WARNINGS_DROPPED' },
      );
      return;
    }
    seen.add(message);
    const code = typeof fields.code === 'string' ? `MQKIT_${fields.code}` : 'MQKIT';
    process.emitWarning(message, { type: 'MqkitWarning', code });
  };
  return { debug() {}, info() {}, warn, error: warn };
}

/** Checks a user-given logger once, so a bad one fails at `connect`, not in a background loop. */
export function isLogger(value: unknown): value is Logger {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return ['debug', 'info', 'warn', 'error'].every((m) => typeof v[m] === 'function');
}

/**
 * Calls a logger method and swallows what it throws: a broken logger must not turn a handled
 * failure into a crash.
 */
export function safeLog(
  logger: Logger,
  level: keyof Logger,
  fields: Record<string, unknown>,
  message: string,
): void {
  try {
    logger[level](fields, message);
  } catch {
    // Nothing sensible is left to report to.
  }
}

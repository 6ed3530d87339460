import {
  ClosedError,
  ConnectionError,
  isMqError,
  type MqError,
  PublishError,
  TimeoutError,
} from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { scrubError, scrubText } from '../../core/redact.js';

/**
 * Maps an error of rocketmq-client-nodejs to an MqError. The client's exceptions carry the
 * proxy's status `code` (RocketMQ's v2 codes: 4xxxx client errors, 429xx throttling, 5xxxx
 * server errors); gRPC transport errors carry a small gRPC status `code` instead.
 */
export function toMqError(error: unknown, what: string, secrets: readonly string[]): MqError {
  if (isMqError(error)) return error;
  const message = scrubText(error instanceof Error ? error.message : String(error), secrets);
  const code =
    typeof (error as { code?: unknown })?.code === 'number' ? (error as { code: number }).code : undefined;
  const text = `${what}: ${message}`;
  // The cause is kept for its stack and code, scrubbed like the message (it may quote the URL).
  const cause = scrubError(error, secrets);
  if (code !== undefined && code >= 10_000) {
    if (code === 40_401 || code === 40_402 || code === 40_403 || code === 40_404)
      return new PublishError(`${text} (does the topic exist?)`, { cause, retriable: false });
    if (code === 41_300 || code === 41_301 || code === 43_100)
      return new PublishError(text, { cause, retriable: false });
    if (code === 40_800 || code === 50_400) return new TimeoutError(text, { cause });
    if (code >= 40_000 && code < 42_900 && code !== 40_800)
      return new PublishError(text, { cause, retriable: false });
    return new PublishError(text, { cause, retriable: true });
  }
  if (/deadline exceeded|timeout/i.test(message)) return new TimeoutError(text, { cause });
  if (/not running|shut ?down/i.test(message)) return new ClosedError(text, { cause });
  return new ConnectionError(text, { cause });
}

/** The client's logger (`info(format, ...args)`), routed to mqkit's logger at debug. */
export function clientLogger(logger: Logger, secrets: readonly string[]) {
  const line =
    (level: string) =>
    (...args: unknown[]): void => {
      let i = 1;
      const format = String(args[0] ?? '');
      const text = format.replace(/%[sdjo]/g, () => String(args[i++]));
      const rest = args.slice(i).map(String).join(' ');
      try {
        logger.debug(
          { client: 'rocketmq-client-nodejs', level },
          scrubText(rest ? `${text} ${rest}` : text, secrets),
        );
      } catch {
        // a logger that throws must not break the client
      }
    };
  return { info: line('info'), warn: line('warn'), error: line('error'), debug: line('debug'), close() {} };
}

import { isMqError, type MqError, PublishError } from './errors.js';
import { type Logger, safeLog } from './logger.js';
import type { OutgoingMessage } from './message.js';
import { thrownText } from './options.js';

/**
 * Where a failed `sendOneWay` goes: the producer's `onError`, else the logger at `error`.
 * Never throws: an `onError` that throws is logged, not rethrown, because nobody awaits a
 * one-way send and a throw there would be an unhandled rejection that ends the process.
 */
export function oneWayReporter(
  onError: ((error: MqError, message: OutgoingMessage<unknown>) => void) | undefined,
  logger: Logger,
): (error: unknown, message: OutgoingMessage<unknown>) => void {
  return (error, message) => {
    const e = isMqError(error) ? error : new PublishError(thrownText(error), { cause: error });
    if (onError) {
      try {
        onError(e, message);
        return;
      } catch (thrown) {
        safeLog(logger, 'error', { code: e.code, thrown }, `producer.onError threw while handling ${e.code}`);
      }
    }
    safeLog(logger, 'error', { code: e.code }, `sendOneWay failed (${e.code}): ${e.message}`);
  };
}

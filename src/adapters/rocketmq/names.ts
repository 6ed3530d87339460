import { ConfigError } from '../../core/errors.js';

/** RocketMQ refuses topic names longer than this (`TopicValidator.TOPIC_MAX_LENGTH`). */
const MAX_NATIVE_TOPIC = 127;

/**
 * The RocketMQ name of an mqkit topic or group. RocketMQ allows `A-Z a-z 0-9 _ - | %` and no
 * dot, which mqkit names (and its derived names, `<topic>.<group>.dlq`) use: a dot becomes `|`,
 * which mqkit names never contain, so the mapping is reversible. `%` is left alone (RocketMQ's
 * own retry and dead-letter topics start with it, and mqkit names cannot).
 */
export function nativeName(name: string, field: string): string {
  const native = name.replaceAll('.', '|');
  if (native.length > MAX_NATIVE_TOPIC)
    throw new ConfigError(
      field,
      `RocketMQ names are at most ${MAX_NATIVE_TOPIC} characters (got ${name.length})`,
    );
  return native;
}

/** The mqkit name of a RocketMQ topic or group (see {@link nativeName}). */
export function mqkitName(native: string): string {
  return native.replaceAll('|', '.');
}

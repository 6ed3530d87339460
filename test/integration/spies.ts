import { inspect } from 'node:util';
import { isMqError, type Logger, type MqError } from '../../src/index.js';

/** A logger that keeps every line, to look for warnings (and for secrets) in. */
export function recordingLogger(): Logger & { lines: { level: string; fields: unknown; message: string }[] } {
  const lines: { level: string; fields: unknown; message: string }[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push({ level, fields, message });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The `MqError` a promise rejects with; throws if it resolves or rejects with anything else. */
export async function mqRejection(promise: Promise<unknown>): Promise<MqError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isMqError(error)) throw new Error(`expected an MqError, got ${inspect(error)}`);
  return error;
}

import { appendFileSync } from 'node:fs';
import util from 'node:util';
import fc from 'fast-check';
import { expect } from 'vitest';
import type { Logger } from '../../src/core/logger.js';
import { MqError } from '../../src/index.js';

/** The closed union of `MqError.code` (README, src/core/errors.ts). */
export const CODES: ReadonlySet<string> = new Set([
  'CONFIG',
  'CONNECTION',
  'PUBLISH',
  'DECODE',
  'UNSUPPORTED',
  'TIMEOUT',
  'CLOSED',
  'CONFLICT',
]);

/** The marker every generated password starts with; no other generated text contains it. */
export const SECRET_MARKER = 'S3CRET';

/**
 * Cases per property: `MQKIT_FUZZ_RUNS` (default 200, the quick subset `npm test` runs) times the
 * property's weight. `npm run test:fuzz` sets 2000 (see test/fuzz/vitest.fuzz.config.ts).
 */
export function runs(weight = 1): number {
  const text = process.env.MQKIT_FUZZ_RUNS ?? '200';
  const base = Number(text);
  if (!Number.isInteger(base) || base < 1)
    throw new Error(`MQKIT_FUZZ_RUNS must be an integer >= 1 (got ${text})`);
  return Math.max(1, Math.round(base * weight));
}

/** `MQKIT_FUZZ_SEED` replays a run (the summary line and every failure print the seed). */
export const SEED =
  process.env.MQKIT_FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.MQKIT_FUZZ_SEED);

/** How a call to the API ended. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Thrown by the properties when a call neither resolved nor rejected within its bound. */
export class HangError extends Error {}

/**
 * Runs `call` (a synchronous throw counts as a rejection) and waits at most `boundMs` for it to
 * settle; a call still pending then fails the case with a {@link HangError}. The call itself
 * cannot be stopped: it goes on in the background.
 */
export async function settle<T>(
  what: string,
  boundMs: number,
  call: () => T | Promise<T>,
): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`${what} did not settle within ${boundMs} ms`)), boundMs);
  });
  try {
    const value = await Promise.race([Promise.resolve().then(call), bound]);
    return { ok: true, value };
  } catch (error) {
    if (error instanceof HangError) throw error;
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

/** One line naming an error's class, code and message, for failure reports. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.constructor.name}${code === undefined ? '' : ` (code ${String(code)})`}: ${error.message}`;
  }
  return `non-Error thrown: ${util.inspect(error, { depth: 2 })}`;
}

/** Fails unless `error` is an `MqError` whose code is in the closed union. */
export function expectMqError(what: string, error: unknown): MqError {
  if (!(error instanceof MqError))
    throw new Error(`${what} failed with a non-MqError: ${describeError(error)}`);
  if (!CODES.has(error.code)) throw new Error(`${what} failed with an unknown code: ${describeError(error)}`);
  return error;
}

/** Fails unless `outcome` is a rejection with an `MqError` of code `code`. */
export function expectCode(what: string, outcome: Outcome<unknown>, code: string, why: string): void {
  if (outcome.ok) throw new Error(`${what} succeeded, expected a ${code} error (${why})`);
  const error = expectMqError(what, outcome.error);
  if (error.code !== code) throw new Error(`${what}: expected ${code} (${why}), got ${describeError(error)}`);
}

/** Every text an error exposes: inspect output (cause chain and own fields), and each message and stack. */
export function errorTexts(error: unknown): string[] {
  const texts = [util.inspect(error, { depth: 20 }), util.inspect(error, { depth: 20, showHidden: true })];
  let current: unknown = error;
  for (let i = 0; i < 20 && current !== undefined && current !== null; i++) {
    if (current instanceof Error) texts.push(current.message, current.stack ?? '');
    else texts.push(String(current));
    current = typeof current === 'object' ? (current as { cause?: unknown }).cause : undefined;
  }
  return texts;
}

/** The forms in which `password` could leak: as generated, percent-encoded, as written in the URL. */
export function secretForms(password: string, asWritten?: string): string[] {
  const forms = new Set([SECRET_MARKER, password, encodeURIComponent(password)]);
  if (asWritten !== undefined) forms.add(asWritten);
  return [...forms].filter((f) => f.length >= SECRET_MARKER.length);
}

/** Fails if any of `texts` contains one of `forms`, quoting where. */
export function expectNoSecret(where: string, texts: readonly string[], forms: readonly string[]): void {
  for (const text of texts) {
    for (const form of forms) {
      const at = text.indexOf(form);
      if (at >= 0) {
        const excerpt = text.slice(Math.max(0, at - 60), at + form.length + 20).replaceAll('\n', '\\n');
        throw new Error(`secret ${JSON.stringify(form)} leaked in ${where}: ...${excerpt}...`);
      }
    }
  }
}

/** A pino-shaped logger that records each line and whether it kept the `(fields, message)` shape. */
export function spyLogger(): { logger: Logger; lines: string[]; misshapen: string[] } {
  const lines: string[] = [];
  const misshapen: string[] = [];
  const record =
    (level: string) =>
    (fields: unknown, message: unknown): void => {
      if (typeof fields !== 'object' || fields === null || typeof message !== 'string')
        misshapen.push(`${level}(${typeof fields}, ${typeof message})`);
      lines.push(`${level} ${util.inspect(fields, { depth: 20 })} ${String(message)}`);
    };
  return {
    logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
    lines,
    misshapen,
  };
}

/**
 * Watches the process for what must never happen: an uncaught exception, an unhandled
 * rejection, a process warning (the default logger's channel) and writes to stdout or stderr
 * (mqkit never writes there itself; client libraries must go through its logger).
 */
export class ProcessWatch {
  readonly crashes: string[] = [];
  readonly warnings: string[] = [];
  readonly output: string[] = [];
  private readonly restore: (() => void)[] = [];

  install(): void {
    const onException = (error: unknown): void => {
      this.crashes.push(`uncaughtException: ${describeError(error)}`);
    };
    const onRejection = (reason: unknown): void => {
      this.crashes.push(`unhandledRejection: ${describeError(reason)}`);
    };
    const onWarning = (warning: Error): void => {
      this.warnings.push(`${warning.name}: ${warning.message}`);
    };
    process.on('uncaughtException', onException);
    process.on('unhandledRejection', onRejection);
    process.on('warning', onWarning);
    this.restore.push(() => {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
      process.off('warning', onWarning);
    });
    for (const stream of [process.stdout, process.stderr]) {
      const original = stream.write;
      const name = stream === process.stdout ? 'stdout' : 'stderr';
      stream.write = ((chunk: unknown, ...rest: unknown[]) => {
        this.output.push(`${name}: ${String(chunk)}`);
        return (original as (...args: unknown[]) => boolean).call(stream, chunk, ...rest);
      }) as typeof stream.write;
      this.restore.push(() => {
        stream.write = original;
      });
    }
  }

  uninstall(): void {
    for (const undo of this.restore.splice(0)) undo();
  }

  /** Lets pending rejections surface (Node reports them after the microtask queue drains). */
  async flush(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Fails if anything fatal happened since the last call (and forgets it). */
  expectNoCrash(where: string): void {
    const crashes = this.crashes.splice(0);
    if (crashes.length > 0) throw new Error(`${where}: ${crashes.join('; ')}`);
  }
}

/**
 * `MQKIT_FUZZ_STRICT=1` (set by `npm run test:fuzz`): a property that its time limit cut off
 * before it ran every planned case fails, so the full run's case count is a guarantee rather than
 * an upper bound. Without it (the quick subset in `npm test`) such a property passes with the
 * cases it ran, and the summary line says it was cut off.
 */
export const STRICT = process.env.MQKIT_FUZZ_STRICT === '1';

/**
 * `MQKIT_FUZZ_TALLY_FILE`: every property appends a JSON line `{ file, name, runs, planned }` there,
 * for the total over all files that test/fuzz/fuzz-total.ts prints at the end of the run.
 */
const TALLY_FILE = process.env.MQKIT_FUZZ_TALLY_FILE;

/** Cases run per property, for the summary line. */
const tally = new Map<string, { runs: number; planned: number; shrinks: number; failed: boolean }>();

/**
 * `MQKIT_FUZZ_SURVEY=1`: instead of stopping at the first failure and shrinking it, run every
 * case and print each distinct failure (message with numbers and quoted text blanked) once, with
 * the smallest input that produced it. For listing what a run finds; never fails the test.
 */
const SURVEY = process.env.MQKIT_FUZZ_SURVEY === '1';

function signature(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split(/: \.\.\.|\n/)[0] ?? '')
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/'[^']*'/g, "'…'")
    .replace(/\d+/g, 'N')
    .slice(0, 160);
}

/**
 * Checks a property like `fc.assert`, records its case count, and fails with fast-check's report
 * (seed, counterexample after shrinking) and the error. A property stops starting new cases after
 * `timeLimitMs` (shrinking included), so a run with hanging cases ends in bounded time; with
 * {@link STRICT} a property cut off that way before `numRuns` cases fails.
 */
export async function checkProperty<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
  numRuns: number,
  timeLimitMs = 240_000,
): Promise<void> {
  const found = new Map<string, { example: string; count: number }>();
  const property = fc.asyncProperty(arbitrary, async (value) => {
    if (!SURVEY) return predicate(value);
    try {
      await predicate(value);
    } catch (error) {
      const key = signature(error);
      const example = `${fc.stringify(value).slice(0, 1500)}\n      -> ${(error instanceof Error ? error.message : String(error)).slice(0, 600)}`;
      const seen = found.get(key);
      if (seen === undefined || example.length < seen.example.length)
        found.set(key, { example, count: (seen?.count ?? 0) + 1 });
      else seen.count++;
    }
  });
  const details = await fc.check(property, {
    numRuns,
    seed: SEED,
    interruptAfterTimeLimit: timeLimitMs,
    markInterruptAsFailure: false,
  });
  tally.set(name, {
    runs: details.numRuns,
    planned: numRuns,
    shrinks: details.numShrinks,
    failed: details.failed || found.size > 0,
  });
  if (TALLY_FILE !== undefined)
    appendFileSync(
      TALLY_FILE,
      `${JSON.stringify({ file: expect.getState().testPath, name, runs: details.numRuns, planned: numRuns })}\n`,
    );
  if (SURVEY) {
    const lines = [...found.values()].map((f, i) => `  ${i + 1}. (${f.count}x) ${f.example}`);
    console.log(
      `[mqkit fuzz survey] ${name}: ${details.numRuns} cases, ${found.size} distinct failures\n${lines.join('\n')}`,
    );
    return;
  }
  if (details.failed) {
    const error = details.errorInstance;
    throw new Error(
      `${fc.defaultReportMessage(details) ?? `property ${name} failed`}\nError: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (STRICT && details.numRuns < numRuns) {
    throw new Error(
      `property ${name} ran ${details.numRuns} of its ${numRuns} planned cases: its time limit of ${timeLimitMs} ms cut it off (seed ${SEED}). A case got slower; find which with MQKIT_FUZZ_SURVEY=1, or raise MQKIT_FUZZ_TIME_LIMIT_MS on a slow machine`,
    );
  }
}

/** One line: cases per property of this file, and the total. */
export function summary(file: string): string {
  let total = 0;
  const parts: string[] = [];
  for (const [name, t] of tally) {
    total += t.runs;
    const short = t.runs < t.planned ? ` of ${t.planned} (cut off by its time limit)` : '';
    parts.push(`${name} ${t.runs}${short}${t.failed ? ` (FAILED, ${t.shrinks} shrinks)` : ''}`);
  }
  return `[mqkit fuzz] ${file}: ${parts.join(', ')}; ${total} cases, seed ${SEED}`;
}

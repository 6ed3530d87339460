import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** Outcome of {@link run}. */
export interface RunResult {
  /** Exit code, or null when the process was killed or never started. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** True when the executable was not found (ENOENT). */
  notFound: boolean;
  /** True when the process was killed because it exceeded `timeoutMs`. */
  timedOut: boolean;
}

/**
 * Runs a command to completion without a shell and collects its output.
 * Never rejects: a missing executable yields `notFound: true`.
 *
 * @param cmd - executable (looked up on PATH)
 * @param args - arguments
 * @param options.timeoutMs - kill (SIGKILL) after this long; defaults to 120 000 ms
 * @param options.cwd - working directory; defaults to the current one
 * @param options.env - environment; defaults to `process.env`
 * @param options.onLine - receives every output line as it arrives
 */
export function run(
  cmd: string,
  args: readonly string[],
  options: {
    timeoutMs?: number;
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    onLine?: (line: string) => void;
  } = {},
): Promise<RunResult> {
  const { timeoutMs = 120_000, cwd, env = process.env, onLine } = options;
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const lines = onLine ? lineSplitter(onLine) : undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      lines?.(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      lines?.(chunk);
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({
        code: null,
        stdout,
        stderr: stderr || err.message,
        notFound: err.code === 'ENOENT',
        timedOut,
      });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, notFound: false, timedOut });
    });
  });
}

/** Returns a chunk consumer that calls `onLine` once per complete, non-empty line. */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString();
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const part of parts) {
      const line = part.replace(/\r$/, '');
      if (line.length > 0) onLine(line);
    }
  };
}

/**
 * Finds an executable on PATH (plus the sbin directories, which a non-root
 * PATH often lacks) and returns its absolute path, or undefined.
 *
 * @param name - executable name, e.g. `rabbitmq-server`
 */
export async function which(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Last `maxLines` non-empty lines of `text`, for error messages. */
export function tail(text: string, maxLines = 30): string {
  return text
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .slice(-maxLines)
    .join('\n');
}

/** Collapses `text` to one line of at most `max` characters, for one-line error messages. */
export function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * Installs Debian packages with `apt-get update && apt-get install -y`.
 * Needs root; throws a one-line Error naming `what` and `hint` otherwise or on failure.
 *
 * @param packages - Debian package names
 * @param what - server name for error messages, e.g. `RabbitMQ`
 * @param hint - how else to provide the server, e.g. `set MQKIT_TEST_AMQP_URL=...`
 * @param log - receives apt-get output lines; defaults to a no-op
 * @param stepTimeoutMs - limit of each step (update, install), killed after it; default 10 min
 */
export async function aptInstall(
  packages: readonly string[],
  what: string,
  hint: string,
  log: (line: string) => void = () => {},
  stepTimeoutMs = 600_000,
): Promise<void> {
  const apt = await which('apt-get');
  if (!apt || process.getuid?.() !== 0) {
    throw new Error(
      `${what}: ${packages.join(' ')} is not installed and cannot be installed here (needs root and apt-get); ${hint}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`${what}: installing ${packages.join(' ')} with apt-get`);
  const update = await run(apt, ['update'], { env, timeoutMs: stepTimeoutMs, onLine: log });
  const install =
    update.code === 0
      ? await run(apt, ['install', '-y', '--no-install-recommends', ...packages], {
          env,
          timeoutMs: stepTimeoutMs,
          onLine: log,
        })
      : update;
  if (install.code !== 0) {
    const step = update.code === 0 ? 'apt-get install' : 'apt-get update';
    const why = install.timedOut
      ? `timed out after ${Math.round(stepTimeoutMs / 1000)} s`
      : `exit ${install.code}: ${oneLine(tail(install.stderr, 2), 160)}`;
    throw new Error(`${what}: ${step} ${packages.join(' ')} failed (${why}); ${hint}`);
  }
}

/** Hides the password of a URL such as `amqp://user:secret@host` for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):([^@/]*)@/, (_m, user: string) => `//${user}:***@`);
}

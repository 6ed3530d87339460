import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lineSplitter, which } from './exec-utils.js';

/** A JVM started by {@link spawnJvm}. */
export interface JvmProcess {
  child: ChildProcess;
  /** The last 200 lines of its stdout and stderr. */
  output: string[];
  /** Set once it exited (or could not be spawned). */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

const live = new Set<{ exitSync(): void }>();
let exitHookInstalled = false;

/**
 * JVMs started together and their run dir. From construction until {@link JvmGroup.stop}, the
 * JVMs are SIGKILLed and the run dir removed if the Node process exits.
 */
export class JvmGroup<P extends JvmProcess> {
  /** The group's JVMs; an entry may be replaced (a restarted node). */
  readonly procs: P[] = [];
  #stopped = false;

  /**
   * @param runDir - removed by `stop()` and on process exit
   * @param opts.graceMs - how long a JVM may take to stop after SIGTERM before it gets SIGKILL
   * @param opts.afterStop - runs in `stop()` once every JVM exited, before the run dir is removed
   * @param opts.onExitSync - more synchronous clean-up on process exit, after the run dir is removed
   */
  constructor(
    readonly runDir: string,
    private readonly opts: {
      graceMs: number;
      afterStop?: (procs: readonly P[]) => Promise<void>;
      onExitSync?: () => void;
    },
  ) {
    live.add(this);
    installExitHook();
  }

  /** True once `stop()` was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Stops every JVM (see {@link stopJvm}), runs `afterStop` and removes the run dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.procs.map((p) => stopJvm(p, this.opts.graceMs)));
    await this.opts.afterStop?.(this.procs);
    live.delete(this);
    await rm(this.runDir, { recursive: true, force: true });
  }

  /** Stops JVM `index` (see {@link stopJvm}), if there is one. */
  async stopOne(index: number): Promise<void> {
    const proc = this.procs[index];
    if (proc !== undefined) await stopJvm(proc, this.opts.graceMs);
  }

  /** Synchronous clean-up for process exit. */
  exitSync(): void {
    for (const p of this.procs) if (p.exit === undefined) p.child.kill('SIGKILL');
    rmSync(this.runDir, { recursive: true, force: true });
    this.opts.onExitSync?.();
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const group of live) group.exitSync();
  });
}

/** `JAVA_HOME/bin/java` when it exists, else `java` on PATH, else undefined. */
export async function locateJava(): Promise<string | undefined> {
  const candidates = [
    process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : undefined,
    await which('java'),
  ];
  return candidates.find((c): c is string => c !== undefined && existsSync(c));
}

/**
 * Creates a fresh run dir `<tmpdir>/<prefix><pid>-XXXXXX`, first removing those of earlier Node
 * processes that died without cleaning up.
 */
export async function createRunDir(prefix: string): Promise<string> {
  removeOrphanedRunDirs(prefix);
  return mkdtemp(join(tmpdir(), `${prefix}${process.pid}-`));
}

/**
 * Spawns `java javaArgs` with stdout and stderr captured line by line into `output` and passed
 * to `log` as `<name>: <line>`. With `setpriv` (its path) the JVM runs under
 * `setpriv --pdeathsig KILL`, so it gets SIGKILL even if Node dies without running exit hooks.
 */
export function spawnJvm(
  java: string,
  javaArgs: readonly string[],
  opts: {
    name: string;
    cwd: string;
    env?: NodeJS.ProcessEnv;
    setpriv: string | undefined;
    log: (line: string) => void;
  },
): JvmProcess {
  const [cmd, args] = opts.setpriv
    ? [opts.setpriv, ['--pdeathsig', 'KILL', '--', java, ...javaArgs]]
    : [java, [...javaArgs]];
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: JvmProcess = { child, output: [] };
  const onLine = lineSplitter((line) => {
    proc.output.push(line);
    if (proc.output.length > 200) proc.output.shift();
    opts.log(`${opts.name}: ${line}`);
  });
  child.stdout?.on('data', onLine);
  child.stderr?.on('data', onLine);
  child.once('error', (err) => {
    proc.exit ??= { code: null, signal: null };
    proc.output.push(`spawn error: ${err.message}`);
  });
  child.once('exit', (code, signal) => {
    proc.exit = { code, signal };
  });
  return proc;
}

/** Stops a JVM with SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
export async function stopJvm(proc: JvmProcess, graceMs: number): Promise<void> {
  if (proc.exit !== undefined) return;
  const exited = new Promise<void>((resolve) => proc.child.once('exit', () => resolve()));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Removes run dirs of earlier Node processes that died without cleaning up. */
function removeOrphanedRunDirs(prefix: string): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** How the JVMs of one Kafka start use AppCDS (a class-data-sharing archive). */
export interface CdsPlan {
  /** Flags for every JVM: use the archive when it exists. */
  useFlags: string[];
  /** Flags for the one JVM that records the archive at exit when it does not exist yet. */
  recordFlags: string[];
  /** Call after the recording JVM exited cleanly: moves the recorded archive into place. */
  finish(exitedCleanly: boolean): Promise<void>;
  /** Synchronous clean-up for process exit. */
  discardSync(): void;
}

/**
 * Plans a dynamic AppCDS archive of the broker's classes, stored next to the jar
 * cache (`<cache>/kafka-<version>/cds-<jdk+classpath hash>.jsa`). The first clean
 * broker shutdown records it (`-XX:ArchiveClassesAtExit`); later starts map it
 * (`-XX:SharedArchiveFile`), which saves about a second per JVM on 2 cores. A
 * stale or foreign archive is only a warning to the JVM (`-Xshare:auto`), never
 * a failure. Disabled with `MQKIT_KAFKA_CDS=0`.
 *
 * @param libsDir - the jar directory (its parent holds the archive)
 * @param javaVersion - `java -version` output, so a JDK upgrade gets a new archive
 * @param log - receives a line when an archive is recorded; defaults to a no-op
 */
export async function planCds(
  libsDir: string,
  javaVersion: string,
  log: (line: string) => void = () => {},
): Promise<CdsPlan> {
  const none: CdsPlan = { useFlags: [], recordFlags: [], finish: async () => {}, discardSync: () => {} };
  if (process.env.MQKIT_KAFKA_CDS === '0') return none;
  const dir = dirname(libsDir);
  const key = createHash('sha256').update(`${javaVersion}\n${libsDir}`).digest('hex').slice(0, 12);
  const archive = join(dir, `cds-${key}.jsa`);
  if (existsSync(archive)) {
    const flags = [`-XX:SharedArchiveFile=${archive}`];
    return { useFlags: flags, recordFlags: flags, finish: async () => {}, discardSync: () => {} };
  }
  await removeStalePending(dir);
  const pending = join(dir, `cds-${key}.${process.pid}-${randomBytes(4).toString('hex')}.jsa.tmp`);
  return {
    useFlags: [],
    // The dump warns about every class it cannot archive (e.g. log4j 1's Java 5 classes).
    recordFlags: [`-XX:ArchiveClassesAtExit=${pending}`, '-Xlog:cds*=error'],
    finish: async (exitedCleanly) => {
      try {
        if (exitedCleanly && !existsSync(archive) && (await stat(pending)).size > 0) {
          await rename(pending, archive);
          log(`kafka: recorded class-data-sharing archive ${archive}`);
        }
      } catch {
        // nothing recorded
      } finally {
        await rm(pending, { force: true });
      }
    },
    discardSync: () => rmSync(pending, { force: true }),
  };
}

/** Removes half-written archives of runs that died more than an hour ago. */
async function removeStalePending(dir: string): Promise<void> {
  const hourAgo = Date.now() - 3_600_000;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.jsa.tmp')) continue;
    const path = join(dir, name);
    try {
      if ((await stat(path)).mtimeMs < hourAgo) await rm(path, { force: true });
    } catch {
      // raced with another cleaner
    }
  }
}

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { oneLine, run, which } from './exec-utils.js';

/** Pinned because Maven 3.8.7's default maven-dependency-plugin is too old for this use. */
const DEPENDENCY_PLUGIN_VERSION = '3.8.1';
const MARKER = '.mqkit-complete.json';
const HINT = 'set MQKIT_TEST_KAFKA_URL=host:port to use a running broker';

/** Result of {@link ensureKafkaJars}. */
export interface KafkaJars {
  /** Directory holding every jar of the broker's runtime classpath. */
  libsDir: string;
  /** True when the jars came from the cache without running Maven. */
  cached: boolean;
  /** Time spent making sure the jars exist (near 0 when cached). */
  ms: number;
}

/**
 * Root of the jar cache: `$MQKIT_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/mqkit`.
 * It lives outside the checkout so that fresh clones reuse it.
 */
export function kafkaCacheRoot(): string {
  if (process.env.MQKIT_CACHE_DIR) return process.env.MQKIT_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'mqkit');
}

/**
 * Makes sure Apache Kafka's own jars for `version` are in the cache and returns
 * their directory (`<cache root>/kafka-<version>/libs`).
 *
 * On a miss it writes a pom.xml depending on `org.apache.kafka:kafka_2.13:<version>`
 * and runs `mvn dependency:copy-dependencies` (maven-dependency-plugin
 * {@link DEPENDENCY_PLUGIN_VERSION}). Kafka's POM declares no SLF4J binding, so a
 * second pass adds the one matching what was resolved: `slf4j-reload4j` for the
 * 3.x line (SLF4J 1.7 + reload4j), `log4j-slf4j-impl`/`log4j-slf4j2-impl` for
 * 4.x (log4j2). Everything is fetched into a private temp directory, a marker
 * file is written last, and the directory is renamed into place, so a
 * half-finished download is never used and concurrent runs cannot corrupt it.
 *
 * @param version - Kafka version, e.g. `3.9.1` or `4.1.0`
 * @param log - receives progress and Maven output lines; defaults to a no-op
 * @throws Error with a one-line message when Maven is missing or the download fails
 */
export async function ensureKafkaJars(
  version: string,
  log: (line: string) => void = () => {},
): Promise<KafkaJars> {
  const started = Date.now();
  const versionDir = join(kafkaCacheRoot(), `kafka-${version}`);
  const libsDir = join(versionDir, 'libs');
  if (existsSync(join(libsDir, MARKER))) return { libsDir, cached: true, ms: Date.now() - started };

  const mvn = await which('mvn');
  if (!mvn) {
    throw new Error(
      `Kafka: mvn (Apache Maven) not found on PATH, needed once to fetch Kafka ${version} jars into ${versionDir}; install it (apt-get install -y maven) or ${HINT}`,
    );
  }
  await mkdir(versionDir, { recursive: true });
  await removeStaleTempDirs(versionDir);
  const work = await mkdtemp(join(versionDir, 'tmp-'));
  try {
    const tmpLibs = join(work, 'libs');
    log(
      `kafka: fetching org.apache.kafka:kafka_2.13:${version} and its dependencies from Maven Central into ${versionDir}`,
    );
    await copyDependencies(mvn, work, tmpLibs, version, []);
    const binding = missingSlf4jBinding(await readdir(tmpLibs));
    if (binding) {
      log(`kafka: adding logging binding ${binding}`);
      await copyDependencies(mvn, work, tmpLibs, version, [binding]);
    }
    const jars = (await readdir(tmpLibs)).filter((f) => f.endsWith('.jar')).sort();
    if (!jars.includes(`kafka_2.13-${version}.jar`)) {
      throw new Error(
        `Kafka: Maven finished but kafka_2.13-${version}.jar is missing from ${tmpLibs}; ${HINT}`,
      );
    }
    await writeFile(
      join(tmpLibs, MARKER),
      `${JSON.stringify({ version, fetchedAt: new Date().toISOString(), jars }, null, 2)}\n`,
    );
    await moveIntoPlace(tmpLibs, libsDir);
    log(`kafka: cached ${jars.length} jars in ${libsDir}`);
    return { libsDir, cached: false, ms: Date.now() - started };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs `mvn dependency:copy-dependencies` for Kafka plus `extra` coordinates (`group:artifact:version`). */
async function copyDependencies(
  mvn: string,
  work: string,
  outDir: string,
  version: string,
  extra: readonly string[],
): Promise<void> {
  const pom = join(work, 'pom.xml');
  await writeFile(pom, pomXml(version, extra));
  const result = await run(
    mvn,
    [
      '-q',
      '-B',
      '-Dstyle.color=never',
      '-f',
      pom,
      `org.apache.maven.plugins:maven-dependency-plugin:${DEPENDENCY_PLUGIN_VERSION}:copy-dependencies`,
      `-DoutputDirectory=${outDir}`,
      '-DincludeScope=runtime',
    ],
    { cwd: work, timeoutMs: 600_000 },
  );
  if (result.code !== 0) {
    const output = stripVTControlCharacters(`${result.stdout}\n${result.stderr}`);
    const firstError = output.split('\n').find((l) => l.includes('[ERROR]')) ?? output;
    const reason = firstError
      .replace('[ERROR]', '')
      .replace(/ -> \[Help \d+\]/, '')
      .trim();
    const why = result.timedOut ? 'timed out after 600s' : `mvn exit ${result.code}`;
    const coordinates = [`org.apache.kafka:kafka_2.13:${version}`, ...extra].join(' + ');
    throw new Error(
      `Kafka: cannot fetch ${coordinates} from Maven Central (${why}: ${ellipsizeMiddle(reason, 60, 120)}); ${HINT}`,
    );
  }
}

/** One line keeping the start and the end (where Maven puts the root cause) of `text`. */
function ellipsizeMiddle(text: string, head: number, tailChars: number): string {
  const flat = oneLine(text, Number.MAX_SAFE_INTEGER);
  return flat.length <= head + tailChars + 3 ? flat : `${flat.slice(0, head)} … ${flat.slice(-tailChars)}`;
}

function pomXml(version: string, extra: readonly string[]): string {
  const deps = [`org.apache.kafka:kafka_2.13:${version}`, ...extra].map((coords) => {
    const [groupId, artifactId, v] = coords.split(':');
    return `    <dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${v}</version></dependency>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by mqkit test/infra/kafka-jars.ts: collects Apache Kafka's broker classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mqkit.test</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
${deps.join('\n')}
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>${DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
`;
}

/**
 * Given the resolved jar names, returns the Maven coordinates of the SLF4J
 * binding that is missing, or undefined when one is already present (or SLF4J
 * is not used at all).
 */
export function missingSlf4jBinding(files: readonly string[]): string | undefined {
  const bindings =
    /^(slf4j-reload4j|slf4j-log4j12|log4j-slf4j-impl|log4j-slf4j2-impl|logback-classic|slf4j-simple)-/;
  if (files.some((f) => bindings.test(f))) return undefined;
  const slf4j = versionOf(files, 'slf4j-api');
  if (!slf4j) return undefined;
  const slf4jMajor = Number(slf4j.split('.')[0]);
  const log4j2 = versionOf(files, 'log4j-core');
  if (log4j2) {
    return slf4jMajor >= 2
      ? `org.apache.logging.log4j:log4j-slf4j2-impl:${log4j2}`
      : `org.apache.logging.log4j:log4j-slf4j-impl:${log4j2}`;
  }
  return `org.slf4j:slf4j-reload4j:${slf4j}`;
}

function versionOf(files: readonly string[], artifact: string): string | undefined {
  const re = new RegExp(`^${artifact}-(\\d[^-]*(?:-[A-Za-z0-9.]+)?)\\.jar$`);
  for (const f of files) {
    const m = re.exec(f);
    if (m) return m[1];
  }
  return undefined;
}

/** Renames a complete download into place; tolerates another run having won the race. */
async function moveIntoPlace(tmpLibs: string, libsDir: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await rename(tmpLibs, libsDir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      if (existsSync(join(libsDir, MARKER))) return; // a concurrent run finished first
      // An incomplete directory from an older layout or a manual copy: replace it.
      await rm(libsDir, { recursive: true, force: true });
    }
  }
  throw new Error(`Kafka: could not move downloaded jars into ${libsDir}`);
}

/** Removes temp dirs left behind by runs that died more than an hour ago. */
async function removeStaleTempDirs(versionDir: string): Promise<void> {
  const hourAgo = Date.now() - 3_600_000;
  for (const name of await readdir(versionDir)) {
    if (!name.startsWith('tmp-')) continue;
    const path = join(versionDir, name);
    try {
      if ((await stat(path)).mtimeMs < hourAgo) await rm(path, { recursive: true, force: true });
    } catch {
      // raced with another cleaner
    }
  }
}

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { oneLine, run, which } from './exec-utils.js';

/** Pinned because Maven 3.8.7's default maven-dependency-plugin is too old for this use. */
const DEPENDENCY_PLUGIN_VERSION = '3.8.1';
const MARKER = '.mqkit-complete.json';

/**
 * Root of the jar cache: `$MQKIT_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/mqkit`.
 * It lives outside the checkout so that fresh clones reuse it.
 */
export function mqkitCacheRoot(): string {
  if (process.env.MQKIT_CACHE_DIR) return process.env.MQKIT_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'mqkit');
}

/** Result of {@link ensureMavenJars}. */
export interface MavenJars {
  /** Directory holding every jar of the runtime classpath. */
  libsDir: string;
  /** True when the jars came from the cache without running Maven. */
  cached: boolean;
  /** Time spent making sure the jars exist (near 0 when cached). */
  ms: number;
}

/** What {@link ensureMavenJars} fetches, and how it words its messages. */
export interface MavenJarsRequest {
  /** Product name starting error messages, e.g. `Kafka`. */
  product: string;
  /** Product version, written into the marker file. */
  version: string;
  /** Cache folder of this version, e.g. `<cache root>/kafka-3.9.1`; the jars go to its `libs`. */
  dir: string;
  /**
   * Maven coordinates (`group:artifact:version`) fetched with their runtime dependencies;
   * each one's `<artifact>-<version>.jar` must be among the results.
   */
  artifacts: readonly string[];
  /** Prefix of progress lines, e.g. `kafka` gives `kafka: fetching …`. */
  logPrefix: string;
  /** What the `fetching` progress line names, e.g. `org.apache.kafka:kafka_2.13:3.9.1 and its dependencies`. */
  fetching: string;
  /** `artifactId` of the generated pom.xml. */
  pomArtifactId: string;
  /** Ends every error message: how to do without this download. */
  hint: string;
  /**
   * Given the jar names of the first pass, coordinates to add in a second pass and what they are
   * for the progress line (Kafka: its missing SLF4J binding); undefined for none.
   */
  secondPass?: (jars: readonly string[]) => { coordinates: string; what: string } | undefined;
  /** Receives progress lines; defaults to a no-op. */
  log?: (line: string) => void;
}

/**
 * Makes sure the jars of `request.artifacts` are in `<request.dir>/libs` and returns that
 * directory.
 *
 * On a miss it writes a pom.xml depending on the artifacts and runs
 * `mvn dependency:copy-dependencies` (maven-dependency-plugin {@link DEPENDENCY_PLUGIN_VERSION},
 * runtime scope). Everything is fetched into a private temp directory, a marker file is written
 * last, and the directory is renamed into place, so a half-finished download is never used and
 * concurrent runs cannot corrupt it. Temp directories of runs that died over an hour ago are
 * removed.
 *
 * @throws Error with a one-line message when Maven is missing or the download fails
 */
export async function ensureMavenJars(request: MavenJarsRequest): Promise<MavenJars> {
  const { product, version, dir, artifacts, logPrefix, hint } = request;
  const log = request.log ?? (() => {});
  const started = Date.now();
  const libsDir = join(dir, 'libs');
  if (existsSync(join(libsDir, MARKER))) return { libsDir, cached: true, ms: Date.now() - started };

  const mvn = await which('mvn');
  if (!mvn) {
    throw new Error(
      `${product}: mvn (Apache Maven) not found on PATH, needed once to fetch ${product} ${version} jars into ${dir}; install it (apt-get install -y maven) or ${hint}`,
    );
  }
  await mkdir(dir, { recursive: true });
  await removeStaleTempDirs(dir);
  const work = await mkdtemp(join(dir, 'tmp-'));
  try {
    const tmpLibs = join(work, 'libs');
    log(`${logPrefix}: fetching ${request.fetching} from Maven Central into ${dir}`);
    await copyDependencies(mvn, work, tmpLibs, request, artifacts);
    const extra = request.secondPass?.(await readdir(tmpLibs));
    if (extra) {
      log(`${logPrefix}: adding ${extra.what}`);
      await copyDependencies(mvn, work, tmpLibs, request, [...artifacts, extra.coordinates]);
    }
    const jars = (await readdir(tmpLibs)).filter((f) => f.endsWith('.jar')).sort();
    for (const coordinates of artifacts) {
      const [, artifactId, v] = coordinates.split(':');
      const jar = `${artifactId}-${v}.jar`;
      if (!jars.includes(jar)) {
        throw new Error(`${product}: Maven finished but ${jar} is missing from ${tmpLibs}; ${hint}`);
      }
    }
    await writeFile(
      join(tmpLibs, MARKER),
      `${JSON.stringify({ version, fetchedAt: new Date().toISOString(), jars }, null, 2)}\n`,
    );
    await moveIntoPlace(tmpLibs, libsDir, product);
    log(`${logPrefix}: cached ${jars.length} jars in ${libsDir}`);
    return { libsDir, cached: false, ms: Date.now() - started };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs `mvn dependency:copy-dependencies` for `coordinates` (`group:artifact:version`). */
async function copyDependencies(
  mvn: string,
  work: string,
  outDir: string,
  request: MavenJarsRequest,
  coordinates: readonly string[],
): Promise<void> {
  const pom = join(work, 'pom.xml');
  await writeFile(pom, pomXml(request.pomArtifactId, coordinates));
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
    throw new Error(
      `${request.product}: cannot fetch ${coordinates.join(' + ')} from Maven Central (${why}: ${ellipsizeMiddle(reason, 60, 120)}); ${request.hint}`,
    );
  }
}

/** One line keeping the start and the end (where Maven puts the root cause) of `text`. */
function ellipsizeMiddle(text: string, head: number, tailChars: number): string {
  const flat = oneLine(text, Number.MAX_SAFE_INTEGER);
  return flat.length <= head + tailChars + 3 ? flat : `${flat.slice(0, head)} … ${flat.slice(-tailChars)}`;
}

function pomXml(artifactId: string, coordinates: readonly string[]): string {
  const deps = coordinates.map((coords) => {
    const [groupId, artifact, v] = coords.split(':');
    return `    <dependency><groupId>${groupId}</groupId><artifactId>${artifact}</artifactId><version>${v}</version></dependency>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by mqkit test/infra/maven-jars.ts: collects a runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mqkit.test</groupId>
  <artifactId>${artifactId}</artifactId>
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

/** Renames a complete download into place; tolerates another run having won the race. */
async function moveIntoPlace(tmpLibs: string, libsDir: string, product: string): Promise<void> {
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
  throw new Error(`${product}: could not move downloaded jars into ${libsDir}`);
}

/** Removes temp dirs left behind by runs that died more than an hour ago. */
async function removeStaleTempDirs(dir: string): Promise<void> {
  const hourAgo = Date.now() - 3_600_000;
  for (const name of await readdir(dir)) {
    if (!name.startsWith('tmp-')) continue;
    const path = join(dir, name);
    try {
      if ((await stat(path)).mtimeMs < hourAgo) await rm(path, { recursive: true, force: true });
    } catch {
      // raced with another cleaner
    }
  }
}

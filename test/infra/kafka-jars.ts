import { join } from 'node:path';
import { ensureMavenJars, type MavenJars, mqkitCacheRoot } from './maven-jars.js';

/** Result of {@link ensureKafkaJars}: `libsDir` holds every jar of the broker's runtime classpath. */
export type KafkaJars = MavenJars;

/**
 * Makes sure Apache Kafka's own jars for `version` are in the cache and returns
 * their directory (`<cache root>/kafka-<version>/libs`, see `mqkitCacheRoot`).
 *
 * On a miss Maven fetches `org.apache.kafka:kafka_2.13:<version>` with its runtime
 * dependencies (see `ensureMavenJars`). Kafka's POM declares no SLF4J binding, so a
 * second pass adds the one matching what was resolved: `slf4j-reload4j` for the
 * 3.x line (SLF4J 1.7 + reload4j), `log4j-slf4j-impl`/`log4j-slf4j2-impl` for
 * 4.x (log4j2).
 *
 * @param version - Kafka version, e.g. `3.9.1` or `4.1.0`
 * @param log - receives progress and Maven output lines; defaults to a no-op
 * @throws Error with a one-line message when Maven is missing or the download fails
 */
export function ensureKafkaJars(version: string, log: (line: string) => void = () => {}): Promise<KafkaJars> {
  const kafka = `org.apache.kafka:kafka_2.13:${version}`;
  return ensureMavenJars({
    product: 'Kafka',
    version,
    dir: join(mqkitCacheRoot(), `kafka-${version}`),
    artifacts: [kafka],
    logPrefix: 'kafka',
    fetching: `${kafka} and its dependencies`,
    pomArtifactId: 'kafka-broker-libs',
    hint: 'set MQKIT_TEST_KAFKA_URL=host:port to use a running broker',
    secondPass: (jars) => {
      const binding = missingSlf4jBinding(jars);
      return binding === undefined ? undefined : { coordinates: binding, what: `logging binding ${binding}` };
    },
    log,
  });
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

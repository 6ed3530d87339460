import { join } from 'node:path';
import { ensureMavenJars, type MavenJars, mqkitCacheRoot } from './maven-jars.js';

/** namesrv, the proxy (which runs the broker in local mode) and the admin tools. */
const ARTIFACTS = ['rocketmq-namesrv', 'rocketmq-proxy', 'rocketmq-tools'];

/** Result of {@link ensureRocketMQJars}: `libsDir` holds every jar of the runtime classpath. */
export type RocketMQJars = MavenJars;

/**
 * Makes sure Apache RocketMQ's jars for `version` are in `<cache root>/rocketmq-<version>/libs`
 * (see `mqkitCacheRoot`), fetching them with Maven on a miss (see `ensureMavenJars`).
 *
 * @throws Error with a one-line message when Maven is missing or the download fails
 */
export function ensureRocketMQJars(
  version: string,
  log: (line: string) => void = () => {},
): Promise<RocketMQJars> {
  return ensureMavenJars({
    product: 'RocketMQ',
    version,
    dir: join(mqkitCacheRoot(), `rocketmq-${version}`),
    artifacts: ARTIFACTS.map((a) => `org.apache.rocketmq:${a}:${version}`),
    logPrefix: 'rocketmq',
    fetching: `org.apache.rocketmq:{${ARTIFACTS.join(',')}}:${version}`,
    pomArtifactId: 'rocketmq-libs',
    hint: 'set MQKIT_TEST_ROCKETMQ_URL=rocketmq://host:port to use a running proxy',
    log,
  });
}

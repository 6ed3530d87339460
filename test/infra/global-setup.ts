import type { TestProject } from 'vitest/node';
import { describeServers, ensureAllServers } from './all-servers.js';

/**
 * Vitest globalSetup: makes Kafka, RabbitMQ, PostgreSQL and Redis available
 * (started in parallel, or reused; see test/infra/services.ts) and provides
 * `kafkaUrl`, `amqpUrl`, `pgUrl`, `redisUrl` and `rocketmqUrl` to tests via `inject()`.
 *
 * Prints one line per server to stderr. Fails the run with one line per server
 * that cannot be had. The returned teardown stops only the servers it started.
 *
 * Env: MQKIT_TEST_{KAFKA,AMQP,PG,REDIS,ROCKETMQ}_URL reuse servers; KAFKA_VERSION
 * (default 3.9.1) and MQKIT_TEST_KAFKA_BROKERS (1 or 3, default 1) shape a
 * started Kafka; MQKIT_TEST_VERBOSE=1 echoes progress and broker output.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const verbose = process.env.MQKIT_TEST_VERBOSE === '1';
  const log = (line: string): void => {
    // Always say when the slow one-off jar download happens; the rest only when verbose.
    if (verbose || /^(kafka|rocketmq): (fetching|adding|cached)/.test(line))
      process.stderr.write(`[mqkit test servers] ${line}\n`);
  };
  const servers = await ensureAllServers({ log });
  project.provide('kafkaUrl', servers.kafkaUrl);
  project.provide('amqpUrl', servers.amqp.url);
  project.provide('pgUrl', servers.pg.url);
  project.provide('redisUrl', servers.redis.url);
  project.provide('rocketmqUrl', servers.rocketmq.url);
  for (const line of describeServers(servers)) process.stderr.write(`[mqkit test servers] ${line}\n`);
  return async () => {
    await servers.stop();
  };
}

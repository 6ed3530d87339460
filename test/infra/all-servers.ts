import type { EnsuredService } from './ensured-service.js';
import { redactUrl } from './exec-utils.js';
import { type KafkaForTests, kafkaForTests } from './kafka.js';
import { ensurePostgres } from './postgres.js';
import { ensureRabbitMQ } from './rabbitmq.js';
import { ensureRedis } from './redis.js';
import { type RocketMQForTests, rocketmqForTests } from './rocketmq.js';

/** The four servers of a test run, see {@link ensureAllServers}. */
export interface TestServers {
  kafka: KafkaForTests;
  amqp: EnsuredService;
  pg: EnsuredService;
  redis: EnsuredService;
  rocketmq: RocketMQForTests;
  /** `kafka://host:port[,host:port]`, the form handed to tests. */
  kafkaUrl: string;
  /** Stops, in parallel, exactly the servers that were started. */
  stop(): Promise<void>;
}

/** Options of {@link ensureAllServers}. */
export interface EnsureAllOptions {
  /** Nodes of a started Kafka cluster; defaults to `MQKIT_TEST_KAFKA_BROKERS` (1 or 3), else 1. */
  kafkaBrokers?: 1 | 3;
  /** Kafka version; defaults to `KAFKA_VERSION`, else 3.9.1. */
  kafkaVersion?: string;
  /** Receives progress lines; defaults to a no-op. */
  log?: (line: string) => void;
}

/**
 * Makes Kafka, RabbitMQ, PostgreSQL, Redis and RocketMQ available in parallel (Kafka is the
 * slow one), reusing running servers and env URLs as the `ensure*` functions
 * and `kafkaForTests` describe.
 *
 * @throws Error with one line per server that could not be had; servers already
 *   started for this call are stopped first
 */
export async function ensureAllServers(opts: EnsureAllOptions = {}): Promise<TestServers> {
  const log = opts.log ?? (() => {});
  // Kafka and RocketMQ (the two JVM brokers) start in parallel with the rest.
  const [kafka, amqp, pg, redis, rocketmq] = await Promise.allSettled([
    kafkaForTests({ brokers: opts.kafkaBrokers, version: opts.kafkaVersion, log }),
    ensureRabbitMQ({ log }),
    ensurePostgres({ log }),
    ensureRedis({ log }),
    rocketmqForTests({ log }),
  ]);
  const all = [kafka, amqp, pg, redis, rocketmq];
  const failures = all.flatMap((r) =>
    r.status === 'rejected' ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : [],
  );
  if (
    failures.length > 0 ||
    kafka.status !== 'fulfilled' ||
    amqp.status !== 'fulfilled' ||
    pg.status !== 'fulfilled' ||
    redis.status !== 'fulfilled' ||
    rocketmq.status !== 'fulfilled'
  ) {
    await Promise.all(
      all.map((r) => (r.status === 'fulfilled' ? r.value.stop().catch(() => {}) : undefined)),
    );
    throw new Error(failures.join('\n'));
  }
  const servers = [kafka.value, amqp.value, pg.value, redis.value, rocketmq.value];
  return {
    kafka: kafka.value,
    amqp: amqp.value,
    pg: pg.value,
    redis: redis.value,
    rocketmq: rocketmq.value,
    kafkaUrl: `kafka://${kafka.value.bootstrap}`,
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** One human-readable line per server: URL (password hidden), started or reused, Kafka start-up time. */
export function describeServers(servers: TestServers): string[] {
  const { kafka } = servers;
  const kafkaDetail = kafka.server
    ? `started (Kafka ${kafka.server.version}, ready in ${kafka.server.startupMs} ms; jars ${
        kafka.server.jarsCached ? 'from cache' : `fetched in ${kafka.server.jarsMs} ms`
      })`
    : 'reused (MQKIT_TEST_KAFKA_URL)';
  const state = (s: EnsuredService): string => (s.started ? 'started' : 'reused');
  return [
    `kafka    ${servers.kafkaUrl} ${kafkaDetail}`,
    `rabbitmq ${redactUrl(servers.amqp.url)} ${state(servers.amqp)}`,
    `postgres ${redactUrl(servers.pg.url)} ${state(servers.pg)}`,
    `redis    ${redactUrl(servers.redis.url)} ${state(servers.redis)}`,
    `rocketmq ${redactUrl(servers.rocketmq.url)} ${
      servers.rocketmq.server
        ? `started (RocketMQ 5.3.3, ready in ${servers.rocketmq.server.startupMs} ms; jars ${
            servers.rocketmq.server.jarsCached
              ? 'from cache'
              : `fetched in ${servers.rocketmq.server.jarsMs} ms`
          })`
        : 'reused (MQKIT_TEST_ROCKETMQ_URL)'
    }`,
  ];
}

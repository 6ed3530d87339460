/**
 * Starts (or reuses) the test servers for benchmarks and manual runs:
 *
 *   npx tsx test/infra/start-servers.ts [--kafka-brokers 1|3] [--kafka-version 4.1.0] [--verbose]
 *
 * Prints `export MQKIT_TEST_…=…` lines on stdout (eval them in another shell so
 * tests reuse these servers), then runs until SIGINT/SIGTERM and stops what it started.
 */
import { parseArgs } from 'node:util';
import { describeServers, ensureAllServers } from './all-servers.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'kafka-brokers': { type: 'string' },
      'kafka-version': { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const brokersArg = values['kafka-brokers'];
  if (brokersArg !== undefined && brokersArg !== '1' && brokersArg !== '3') {
    process.stderr.write('start-servers: --kafka-brokers must be 1 or 3\n');
    return 2;
  }
  const verbose = values.verbose === true;
  const log = (line: string): void => {
    if (verbose || /^(kafka|rocketmq): (fetching|adding|cached)/.test(line))
      process.stderr.write(`${line}\n`);
  };

  let servers: Awaited<ReturnType<typeof ensureAllServers>>;
  try {
    servers = await ensureAllServers({
      kafkaBrokers: brokersArg === '3' ? 3 : brokersArg === '1' ? 1 : undefined,
      kafkaVersion: values['kafka-version'],
      log,
    });
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  for (const line of describeServers(servers)) process.stderr.write(`# ${line}\n`);
  process.stdout.write(
    [
      `export MQKIT_TEST_KAFKA_URL=${servers.kafka.bootstrap}`,
      `export MQKIT_TEST_AMQP_URL=${servers.amqp.url}`,
      `export MQKIT_TEST_PG_URL=${servers.pg.url}`,
      `export MQKIT_TEST_REDIS_URL=${servers.redis.url}`,
      `export MQKIT_TEST_ROCKETMQ_URL=${servers.rocketmq.url}`,
      '',
    ].join('\n'),
  );
  process.stderr.write('# running; Ctrl-C (SIGINT) or SIGTERM stops what was started\n');

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`# ${signal}: stopping\n`);
  await servers.stop();
  process.stderr.write('# stopped\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

/**
 * `npm run test:reliability -- [--seeds N] [--scenario a,b] [--broker x,y] [--scale F] [--json out.json]`
 *
 * Runs the reliability matrix (test/reliability/README in the project README: "Reliability
 * matrix"), prints one line per run and a table per scenario and broker, writes every run's
 * counters as JSON, and exits 1 if any run broke an invariant. Kafka and RabbitMQ are started
 * privately (they get killed); Redis and PostgreSQL are reused or started as for `npm test`.
 */
import { writeFile } from 'node:fs/promises';
import { ensurePostgres } from '../infra/postgres.js';
import { ensureRedis } from '../infra/redis.js';
import { formatTable, runMatrix, summarize } from './matrix.js';
import { SCENARIOS } from './scenarios.js';
import { BROKERS, type BrokerName } from './targets.js';

const USAGE =
  'usage: npm run test:reliability -- [--seeds N (default 5)] [--scenario id,...] [--broker memory,rabbitmq,kafka,kafka3] [--scale F (default 1)] [--json out.json]';

function parse(argv: string[]) {
  const out = {
    seeds: 5,
    scenarios: undefined as string[] | undefined,
    brokers: undefined as BrokerName[] | undefined,
    scale: 1,
    json: undefined as string | undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const need = (): string => {
      if (value === undefined || value.startsWith('--')) throw new Error(`${flag} needs a value; ${USAGE}`);
      i++;
      return value;
    };
    if (flag === '--seeds') {
      out.seeds = Number(need());
      if (!Number.isInteger(out.seeds) || out.seeds < 1)
        throw new Error(`--seeds must be a positive integer; ${USAGE}`);
    } else if (flag === '--scenario') {
      out.scenarios = need().split(',');
      const unknown = out.scenarios.filter((s) => !SCENARIOS.some((x) => x.id === s));
      if (unknown.length)
        throw new Error(
          `unknown scenario ${unknown.join(', ')}; one of ${SCENARIOS.map((s) => s.id).join(', ')}`,
        );
    } else if (flag === '--broker') {
      out.brokers = need().split(',') as BrokerName[];
      const unknown = out.brokers.filter((b) => !BROKERS.includes(b));
      if (unknown.length)
        throw new Error(`unknown broker ${unknown.join(', ')}; one of ${BROKERS.join(', ')}`);
    } else if (flag === '--scale') {
      out.scale = Number(need());
      if (!(out.scale > 0)) throw new Error(`--scale must be a positive number; ${USAGE}`);
    } else if (flag === '--json') out.json = need();
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write(
        `${USAGE}\n\nscenarios:\n${SCENARIOS.map((s) => `  ${s.id.padEnd(14)} ${s.title} [${s.brokers.join(', ')}]`).join('\n')}\n`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${flag}; ${USAGE}`);
  }
  return out;
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const [redis, pgServer] = await Promise.all([ensureRedis(), ensurePostgres()]);
  const t0 = Date.now();
  try {
    const results = await runMatrix({
      seeds: Array.from({ length: args.seeds }, (_, i) => i + 1),
      scenarios: args.scenarios,
      brokers: args.brokers,
      scale: args.scale,
      redisUrl: redis.url,
      pgUrl: pgServer.url,
      log,
    });
    const rows = summarize(results);
    log(`\nreliability matrix: ${results.length} runs in ${Math.round((Date.now() - t0) / 1000)} s`);
    log(formatTable(rows));
    const failed = results.filter((r) => r.violations.length > 0);
    for (const r of failed)
      log(`FAILED ${r.scenario} on ${r.broker}, seed ${r.seed}: ${r.violations.join('; ')}`);
    if (args.json) {
      await writeFile(
        args.json,
        `${JSON.stringify({ seeds: args.seeds, scale: args.scale, table: rows, runs: results }, null, 2)}\n`,
      );
      log(`written ${args.json}`);
    }
    return failed.length > 0 ? 1 : 0;
  } finally {
    await redis.stop();
    await pgServer.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);

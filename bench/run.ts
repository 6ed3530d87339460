import { parseArgs } from 'node:util';

/**
 * `npm run bench -- --url <url> [--messages N] [--size BYTES] [--batch N]`: picks the workload
 * for the URL's broker (memory only; Kafka and RabbitMQ against their raw clients are
 * `mqkit bench --url ...`). `--batch` (memory only): deliveries per batch-handler call in the batch rows, 0 for
 * none.
 *
 * `npm run bench -- <name> [options]` runs a named workload instead, which reads its own
 * options: `outbox` (bench/outbox.ts), `backlog` (bench/backlog.ts: drain time of a backlog with
 * each rebalance strategy).
 */
const named: Record<string, () => Promise<unknown>> = {
  outbox: () => import('./outbox.js'),
  backlog: () => import('./backlog.js'),
};
const first = process.argv[2];
if (first !== undefined && !first.startsWith('-')) {
  const run = named[first];
  if (run === undefined) {
    process.stderr.write(`bench: no workload named ${first}; known: ${Object.keys(named).join(' ')}\n`);
    process.exit(2);
  }
  await run();
  process.exit(0);
}
const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    messages: { type: 'string' },
    size: { type: 'string' },
    batch: { type: 'string' },
  },
});
const url = values.url ?? process.env.MQ_URL ?? 'memory://';
const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].toLowerCase() ?? ''; // new URL() rejects kafka host lists
const args = {
  url,
  messages: values.messages === undefined ? undefined : Number(values.messages),
  size: values.size === undefined ? undefined : Number(values.size),
  batch: values.batch === undefined ? undefined : Number(values.batch),
};
const workloads: Record<string, () => Promise<{ main: (a: typeof args) => Promise<void> }>> = {
  'memory:': () => import('./memory.js'),
};
const load = workloads[scheme];
if (load === undefined) {
  // mqkit against raw kafkajs / amqplib is `mqkit bench --url kafka://... --url amqp://...`.
  process.stderr.write(
    `bench: no workload for ${scheme}; known: ${Object.keys(workloads).join(' ')}; for Kafka and RabbitMQ against their raw clients run: npx tsx src/cli/main.ts bench --url <url>\n`,
  );
  process.exit(2);
}
await (await load()).main(args);

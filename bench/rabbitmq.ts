/**
 * mqkit on RabbitMQ against raw amqplib, same process, same workload (see `benchBroker`):
 *
 *   npx tsx bench/rabbitmq.ts [--url amqp://guest:guest@127.0.0.1:5672] [--messages 50000]
 *
 * Prints, for 100 B and 1 KiB bodies, publish throughput (with confirms), end-to-end throughput
 * and p50/p99 latency of both, and mqkit's end-to-end and publish rates as a ratio of raw's.
 */
import { parseArgs } from 'node:util';
import { prefetchFor, resolveRabbitMqOptions } from '../src/adapters/rabbitmq/options.js';
import { type BenchResult, benchBroker, benchDefaults, formatResults } from '../src/cli/bench.js';
import { connect } from '../src/index.js';
import { benchRawAmqplib } from './raw-amqplib.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.MQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
    messages: { type: 'string', default: '50000' },
  },
});
const url = values.url as string;
const messages = Number(values.messages);
if (!Number.isInteger(messages) || messages < 1) throw new Error('--messages must be a positive integer');

const prefetch = prefetchFor(resolveRabbitMqOptions(), benchDefaults.concurrency);

async function runMqkit(label: string, size: number, count: number): Promise<BenchResult> {
  const broker = await connect(url);
  try {
    return await benchBroker(broker, { ...benchDefaults, label, messages: count, size });
  } finally {
    await broker.close();
  }
}

function runRaw(label: string, size: number, count: number): Promise<BenchResult> {
  return benchRawAmqplib(url, { ...benchDefaults, label, messages: count, size, prefetch });
}

// Warm both paths up (JIT, broker-side queue processes) before measuring.
await runRaw('warm-up raw', 100, Math.min(5000, messages));
await runMqkit('warm-up mqkit', 100, Math.min(5000, messages));

const { partitions, batch, inflight, concurrency, order } = benchDefaults;
process.stdout.write(
  `RabbitMQ ${url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@')}: ${messages} messages, acks all (confirms, persistent), ${partitions} partition queues, batch ${batch} x ${inflight} in flight, order ${order}, concurrency ${concurrency}, prefetch ${prefetch}\n\n`,
);
for (const size of [100, 1024]) {
  const raw = await runRaw(`raw amqplib ${size} B`, size, messages);
  const mqkit = await runMqkit(`mqkit ${size} B`, size, messages);
  process.stdout.write(`${formatResults([raw, mqkit], raw)}\n`);
  process.stdout.write(
    `mqkit/raw at ${size} B: end-to-end ${(mqkit.endToEndRate / raw.endToEndRate).toFixed(2)}, publish ${(mqkit.produceRate / raw.produceRate).toFixed(2)}\n\n`,
  );
}

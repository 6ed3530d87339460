import { type BenchResult, benchBroker, benchDefaults, formatResults } from '../src/cli/bench.js';
import { connect } from '../src/index.js';
import { benchRawKafkajs } from './raw-kafkajs.js';

/**
 * mqkit on Kafka against raw kafkajs, in this process, with acks all and the same workload
 * (`benchDefaults`: 4 partitions, `sendBatch` of 500, 4 in flight, at most 50 000 unhandled):
 * for 100 B and 1 KiB bodies (or `size`), raw kafkajs, raw kafkajs writing the same two headers
 * mqkit writes (`mq-id`, `content-type`), then mqkit, each on a new topic. Prints one table per
 * size with each row's end-to-end rate as a ratio of raw's, and mqkit/raw for produce and end
 * to end against both raw runs.
 */
export async function main(args: { url: string; messages?: number; size?: number }): Promise<void> {
  const authority = (args.url.replace(/^[a-z]+:\/\//i, '').split(/[/?#]/)[0] ?? '').split('@').pop() ?? '';
  const brokers = authority.split(',').map((h) => (h.includes(':') ? h : `${h}:9092`));
  const messages = args.messages ?? 200_000;
  const sizes = args.size === undefined ? [100, 1024] : [args.size];
  // mqkit's consumer defaults, given to raw kafkajs too so the comparison is of the SDK only.
  const settings = { sessionTimeoutMs: 30_000, heartbeatIntervalMs: 500, maxWaitTimeMs: 200 };
  const broker = await connect(args.url);
  const lines: string[] = [];
  try {
    for (const size of sizes) {
      const options = { ...benchDefaults, messages, size };
      const raw = await benchRawKafkajs(
        brokers,
        { ...options, label: 'raw kafkajs' },
        { ...settings, mqkitHeaders: false },
      );
      const rawHeaders = await benchRawKafkajs(
        brokers,
        { ...options, label: 'raw kafkajs + mq headers' },
        { ...settings, mqkitHeaders: true },
      );
      const mqkit = await benchBroker(broker, { ...options, label: 'mqkit kafka' });
      lines.push(
        formatResults([raw, rawHeaders, mqkit], raw),
        ratioLine(raw, mqkit, 'raw'),
        ratioLine(rawHeaders, mqkit, 'raw with the same headers'),
        '',
      );
    }
  } finally {
    await broker.close();
  }
  process.stdout.write(`${lines.join('\n')}`);
}

function ratioLine(raw: BenchResult, mqkit: BenchResult, against: string): string {
  const produce = (mqkit.produceRate / raw.produceRate).toFixed(2);
  const endToEnd = (mqkit.endToEndRate / raw.endToEndRate).toFixed(2);
  return `mqkit/${against} at ${raw.size} B: produce ${produce}, end to end ${endToEnd}`;
}

import { benchBroker, benchDefaults, formatResults } from '../src/cli/bench.js';
import { connect } from '../src/index.js';

/**
 * The embedded broker end to end: 1,000,000 messages of 100 bytes by default, twice with a
 * per-message handler, then twice with a batch handler of `batch` deliveries (default 100, the
 * subscription default; 0 skips these rows). After each run, the heap after a forced GC, to
 * show consumed messages are released (retention keeps 10,000 per partition). Run with
 * --expose-gc for the heap figures.
 */
export async function main(args: {
  url: string;
  messages?: number;
  size?: number;
  batch?: number;
}): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const heapMiB = () => {
    gc?.();
    return (process.memoryUsage().heapUsed / 1024 / 1024).toFixed(1);
  };
  const batchSize = args.batch ?? 100;
  const broker = await connect(args.url);
  const before = heapMiB();
  const results = [];
  const topic = `bench-memory-${Date.now().toString(36)}`; // every run on one topic: heap must not grow
  const heaps = [];
  const runs = [
    { label: 'mqkit memory #1', consumeBatch: 0 },
    { label: 'mqkit memory #2', consumeBatch: 0 },
    ...(batchSize > 0
      ? [
          { label: `mqkit memory batch(${batchSize}) #1`, consumeBatch: batchSize },
          { label: `mqkit memory batch(${batchSize}) #2`, consumeBatch: batchSize },
        ]
      : []),
  ];
  for (const run of runs) {
    results.push(
      await benchBroker(broker, {
        ...benchDefaults,
        ...run,
        messages: args.messages ?? 1_000_000,
        size: args.size ?? 100,
        topic,
      }),
    );
    heaps.push(heapMiB());
  }
  await broker.close();
  process.stdout.write(`${formatResults(results)}\n`);
  process.stdout.write(
    gc
      ? `heap used after GC: ${before} MiB before; after each run: ${heaps.join(', ')} MiB\n`
      : 'heap figures need --expose-gc\n',
  );
}

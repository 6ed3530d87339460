import { benchBroker, benchDefaults, formatResults } from '../src/cli/bench.js';
import { connect } from '../src/index.js';

/**
 * The embedded broker end to end: 1,000,000 messages of 100 bytes by default, then the heap
 * after a forced GC, twice, to show consumed messages are released (retention keeps 10,000
 * per partition). Run with --expose-gc for the heap figures.
 */
export async function main(args: { url: string; messages?: number; size?: number }): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const heapMiB = () => {
    gc?.();
    return (process.memoryUsage().heapUsed / 1024 / 1024).toFixed(1);
  };
  const broker = await connect(args.url);
  const before = heapMiB();
  const results = [];
  const topic = `bench-memory-${Date.now().toString(36)}`; // both runs on one topic: heap must not grow
  const heaps = [];
  for (const run of [1, 2]) {
    results.push(
      await benchBroker(broker, {
        ...benchDefaults,
        label: `mqkit memory #${run}`,
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
      ? `heap used after GC: ${before} MiB before, ${heaps.join(' MiB after run 1, ')} MiB after run 2\n`
      : 'heap figures need --expose-gc\n',
  );
}

import { parseArgs } from 'node:util';
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { type BenchResult, benchBroker, benchDefaults, formatResults } from '../src/cli/bench.js';
import { connect } from '../src/index.js';
import { instrument } from '../src/otel/index.js';

/**
 * The cost of tracing, per broker, one workload (`benchDefaults`: 100 B, sendBatch of 500,
 * acks all) run three ways in one process:
 *   off      the broker as `connect` returns it (after a warm-up run)
 *   no-op    `instrument(broker)` with no SDK registered: the API's no-op tracer and meter
 *   off      again: the spread between two runs of the same code, to read the no-op row against
 *   sdk      `instrument(broker)` with the SDK's TracerProvider and BatchSpanProcessor (its queue
 *            raised to 100 000 spans: the default 2 048 drops spans at these rates; spans
 *            exported to a sink that counts them), W3C propagation and AsyncLocalStorage context
 *
 *   npx tsx bench/otel.ts --url memory:// --url kafka://127.0.0.1:PORT --url amqp://... [--messages N]
 */
const { values } = parseArgs({
  options: { url: { type: 'string', multiple: true }, messages: { type: 'string' } },
});
const urls = values.url ?? ['memory://'];
const messages = Number(values.messages ?? 50_000);

/** Counts exported spans and drops them: the export itself is not what is measured. */
class CountingExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: { code: ExportResultCode }) => void): void {
    this.spans += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
}

const lines: string[] = [];
for (const url of urls) {
  const results: BenchResult[] = [];
  const options = { ...benchDefaults, messages };
  const plain = await connect(url);
  // Warm up (JIT, connections, topic creation paths) so that the first row is not the slow one.
  await benchBroker(plain, { ...options, messages: Math.min(messages, 20_000), label: 'warm-up' });
  results.push(await benchBroker(plain, { ...options, label: `${plain.kind} tracing off` }));
  await plain.close();

  const noop = instrument(await connect(url));
  results.push(await benchBroker(noop, { ...options, label: `${noop.kind} no-op tracer` }));
  await noop.close();

  // Off once more: how far apart two runs of the same code are here, in this order.
  const again = await connect(url);
  results.push(await benchBroker(again, { ...options, label: `${again.kind} tracing off again` }));
  await again.close();

  const exporter = new CountingExporter();
  const tracerProvider = new TracerProvider({
    spanProcessors: [new BatchSpanProcessor({ exporter, maxQueueSize: 100_000, maxExportBatchSize: 2048 })],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const traced = instrument(await connect(url), { tracerProvider });
  const sdk = await benchBroker(traced, { ...options, label: `${traced.kind} sdk batch processor` });
  await traced.close();
  await tracerProvider.forceFlush();
  results.push(sdk);
  context.disable();
  propagation.disable();
  await tracerProvider.shutdown();

  lines.push(
    formatResults(results, results[0]),
    `spans exported by the sdk run: ${exporter.spans} (${(exporter.spans / messages).toFixed(2)} per message)`,
    '',
  );
}
process.stdout.write(`${lines.join('\n')}\n`);

import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { ConsoleSpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { connect, type Delivery } from '../src/index.js';
import { instrument } from '../src/otel/index.js';

/**
 * Traces and metrics of one order on any broker, printed to the console:
 *
 *   npx tsx examples/otel-console.ts                      # the embedded broker
 *   MQ_URL=amqp://guest:guest@127.0.0.1:5672 npx tsx examples/otel-console.ts
 *
 * A request span sends OrderPlaced; the handler fails once and succeeds on the second attempt.
 * The console shows the send span, two process spans linked to it (one per attempt, both in the
 * request's trace with `processSpanParent: 'creation'`), the retry and ack settle spans, then the
 * messaging metrics.
 */
const tracerProvider = new TracerProvider({
  spanProcessors: [new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() })],
});
trace.setGlobalTracerProvider(tracerProvider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const metricReader = new PeriodicExportingMetricReader({
  exporter: new ConsoleMetricExporter(),
  exportIntervalMillis: 60_000,
});
const meterProvider = new MeterProvider({ readers: [metricReader] });

const broker = instrument(await connect(process.env.MQ_URL ?? 'memory://'), {
  meterProvider,
  processSpanParent: 'creation',
});
const topic = `orders-${Date.now().toString(36)}`;
await broker.ensureTopic(topic);

let handled!: () => void;
const done = new Promise<void>((resolve) => {
  handled = resolve;
});
const subscription = await broker.subscribe(
  { topic, group: 'billing', retry: { attempts: 3, backoff: { initialMs: 100 } } },
  (delivery: Delivery<{ orderId: string }>) => {
    if (delivery.attempt === 1) throw new Error('payment service busy');
    handled();
  },
);

const producer = broker.producer();
const tracer = trace.getTracer('order-service');
await tracer.startActiveSpan('POST /orders', async (request) => {
  await producer.send({ topic, key: 'order-1', body: { orderId: 'order-1' } });
  request.end();
});
await done;

await subscription.close();
await producer.close();
await broker.close();
await metricReader.forceFlush();
await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);

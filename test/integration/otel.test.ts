import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { context, propagation, type SpanContext, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  DataPointType,
  type HistogramMetricData,
  MeterProvider,
  type MetricData,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { connect } from 'mqkit';
import { DURATION_BUCKETS, instrument, type OtelOptions } from 'mqkit/otel';
import { Collector, uniqueName, waitFor } from 'mqkit/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Delivery } from '../../src/index.js';
import { createOutbox, startOutboxRelay } from '../../src/patterns/index.js';
import { dropOutboxTables, freshOutboxTable, inTransaction, quietLogger } from './outbox-helpers.js';

const run = promisify(execFile);

/** Reads the metrics on demand. */
class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  context.disable();
  propagation.disable();
});

/** An instrumented broker with in-memory exporters of its own. */
async function tracedBroker(url: string, options: OtelOptions = {}) {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const plain = await connect(url);
  const broker = instrument(plain, { tracerProvider, meterProvider, ...options });
  const spans = (name?: string) =>
    exporter.getFinishedSpans().filter((s) => name === undefined || s.name === name);
  const metricsNamed = async (name: string): Promise<MetricData | undefined> => {
    const { resourceMetrics } = await reader.collect();
    return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  };
  return { broker, spans, metricsNamed, tracer: tracerProvider.getTracer('test') };
}

const same = (a: SpanContext | undefined, b: SpanContext) =>
  a !== undefined && a.traceId === b.traceId && a.spanId === b.spanId;
const linksTo = (span: ReadableSpan, target: ReadableSpan) =>
  span.links.some((l) => same(l.context, target.spanContext()));
const childOf = (span: ReadableSpan, parent: ReadableSpan) =>
  same(span.parentSpanContext, parent.spanContext());

function counterTotal(metric: MetricData | undefined): number {
  if (metric === undefined) return 0;
  return metric.dataPoints.reduce((sum, p) => sum + (p.value as number), 0);
}

function otelSuite(kind: string, url: () => string): void {
  it('send, process and ack: kinds, attributes, the link to the creation context, the active span, and the metrics', async () => {
    const { broker, spans, metricsNamed, tracer } = await tracedBroker(url());
    try {
      const topic = uniqueName('otel');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 2 });
      const collector = new Collector();
      let activeInHandler: SpanContext | undefined;
      const sub = await broker.subscribe({ topic, group }, (d: Delivery) => {
        activeInHandler = trace.getActiveSpan()?.spanContext();
        tracer.startSpan('work').end(); // a span the application makes in its handler
        collector.deliveries.push(d);
      });
      const producer = broker.producer();
      const sent = await producer.send({ topic, key: 'k1', tag: 'created', body: { n: 1 } });
      await collector.waitForCount(1);
      const process = await waitFor(() => spans(`process ${topic}`)[0]);
      const ack = await waitFor(() => spans(`ack ${topic}`)[0]);

      const send = spans(`send ${topic}`)[0] as ReadableSpan;
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(send.attributes).toMatchObject({
        'messaging.system': kind,
        'messaging.system.name': kind,
        'messaging.destination.name': topic,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.message.id': sent.id,
      });
      if (sent.partition !== undefined)
        expect(send.attributes['messaging.destination.partition.id']).toBe(String(sent.partition));
      // The traceparent reached the consumer: its process span links to the send span.
      expect(collector.deliveries[0]?.headers.traceparent).toMatch(
        new RegExp(`^00-${send.spanContext().traceId}-${send.spanContext().spanId}-0[01]$`),
      );
      expect(process.kind).toBe(SpanKind.CONSUMER);
      expect(linksTo(process, send)).toBe(true);
      expect(process.spanContext().traceId).not.toBe(send.spanContext().traceId); // default parent: the active context
      expect(process.attributes).toMatchObject({
        'messaging.system': kind,
        'messaging.destination.name': topic,
        'messaging.consumer.group.name': group,
        'messaging.operation.type': 'process',
        'messaging.message.id': sent.id,
        'mqkit.delivery.attempt': 1,
      });
      const delivered = collector.deliveries[0] as Delivery;
      if (delivered.partition !== undefined)
        expect(process.attributes['messaging.destination.partition.id']).toBe(String(delivered.partition));
      if (kind === 'kafka') {
        expect(send.attributes).toMatchObject({
          'kafka.message.key': 'k1',
          'messaging.kafka.message.key': 'k1',
        });
        expect(process.attributes['kafka.offset']).toBe(Number(delivered.offset));
      }
      if (kind === 'rabbitmq') expect(process.attributes['rabbitmq.destination.routing_key']).toBe('created');
      // The handler ran inside the process span, and the application's span is its child.
      expect(same(activeInHandler, process.spanContext())).toBe(true);
      expect(childOf(spans('work')[0] as ReadableSpan, process)).toBe(true);
      expect(ack.kind).toBe(SpanKind.CLIENT);
      expect(childOf(ack, process)).toBe(true);
      expect(ack.attributes).toMatchObject({
        'messaging.operation.type': 'settle',
        'messaging.operation.name': 'ack',
      });

      expect(counterTotal(await metricsNamed('messaging.client.sent.messages'))).toBe(1);
      expect(counterTotal(await metricsNamed('messaging.client.consumed.messages'))).toBe(1);
      for (const name of ['messaging.client.operation.duration', 'messaging.process.duration']) {
        const histogram = (await metricsNamed(name)) as HistogramMetricData;
        expect(histogram.dataPointType).toBe(DataPointType.HISTOGRAM);
        expect(histogram.descriptor.unit).toBe('s');
        const point = histogram.dataPoints[0];
        expect(point?.value.count).toBe(1);
        expect(point?.value.buckets.boundaries).toEqual(DURATION_BUCKETS);
      }
      // The lag gauge reads the group's backlog per partition, one point per partition.
      const lag = await metricsNamed('messaging.consumer.lag');
      const backlog = await broker.backlog(topic, group);
      expect(lag?.dataPoints.map((p) => p.attributes['messaging.destination.partition.id']).sort()).toEqual(
        backlog.partitions.map((p) => String(p.partition)).sort(),
      );
      expect(lag?.dataPoints.every((p) => p.attributes['messaging.consumer.group.name'] === group)).toBe(
        true,
      );
      await sub.close();
      await producer.close();
    } finally {
      await broker.close();
    }
  });

  it('a message retried twice then dead-lettered: one trace with every attempt, its retries, the dead letter and its reader', async () => {
    const { broker, spans } = await tracedBroker(url(), { processSpanParent: 'creation' });
    try {
      const topic = uniqueName('otel-dl');
      const group = uniqueName('g');
      const deadLetterTopic = `${topic}.dead`;
      await broker.ensureTopic(topic);
      await broker.ensureTopic(deadLetterTopic);
      const deadLetters = new Collector();
      const dlSub = await broker.subscribe(
        { topic: deadLetterTopic, group: uniqueName('dl') },
        (d: Delivery) => {
          deadLetters.deliveries.push(d);
        },
      );
      class PaymentDeclined extends Error {
        override name = 'PaymentDeclined';
      }
      const sub = await broker.subscribe(
        {
          topic,
          group,
          retry: { attempts: 3, backoff: { initialMs: 10, multiplier: 1, maxMs: 10 } },
          deadLetter: { topic: deadLetterTopic },
        },
        () => {
          throw new PaymentDeclined('card declined');
        },
      );
      const producer = broker.producer();
      await producer.send({ topic, key: 'order-1', body: { n: 1 } });
      await deadLetters.waitForCount(1);
      const deadLetterProcess = await waitFor(() => spans(`process ${deadLetterTopic}`)[0]);
      await waitFor(() => spans(`dead_letter ${topic}`)[0]);

      const send = spans(`send ${topic}`)[0] as ReadableSpan;
      const traceId = send.spanContext().traceId;
      const attempts = spans(`process ${topic}`).sort(
        (a, b) =>
          Number(a.attributes['mqkit.delivery.attempt']) - Number(b.attributes['mqkit.delivery.attempt']),
      );
      expect(attempts.map((s) => s.attributes['mqkit.delivery.attempt'])).toEqual([1, 2, 3]);
      for (const attempt of attempts) {
        expect(attempt.spanContext().traceId).toBe(traceId);
        expect(childOf(attempt, send)).toBe(true);
        expect(linksTo(attempt, send)).toBe(true);
        expect(attempt.status.code).toBe(SpanStatusCode.ERROR);
        expect(attempt.attributes['error.type']).toBe('PaymentDeclined');
        expect(attempt.events.some((e) => e.name === 'exception')).toBe(true);
      }
      const retries = spans(`retry ${topic}`);
      expect(retries).toHaveLength(2);
      expect(
        retries.every(
          (r) => r.kind === SpanKind.CLIENT && r.attributes['messaging.operation.type'] === 'settle',
        ),
      ).toBe(true);
      // Each retry span hangs under the attempt that failed.
      for (const [i, retry] of retries.entries())
        expect(
          attempts.findIndex((a) => childOf(retry, a)),
          `retry ${i}`,
        ).toBe(i);
      const deadLetter = spans(`dead_letter ${topic}`)[0] as ReadableSpan;
      expect(childOf(deadLetter, attempts[2] as ReadableSpan)).toBe(true);
      expect(deadLetter.attributes['mqkit.dead_letter.topic']).toBe(deadLetterTopic);
      // The dead letter carries the sender's context: its reader's span is in the same trace.
      expect(deadLetterProcess.spanContext().traceId).toBe(traceId);
      expect(linksTo(deadLetterProcess, send)).toBe(true);
      expect(spans(`ack ${topic}`)).toEqual([]);
      await Promise.all([sub.close(), dlSub.close(), producer.close()]);
    } finally {
      await broker.close();
    }
  });

  it('the context survives a retry copy (order concurrent) and a delayed send (delay tiers where the broker has no native delay)', async () => {
    const { broker, spans } = await tracedBroker(url());
    try {
      const topic = uniqueName('otel-copy');
      await broker.ensureTopic(topic);
      const collector = new Collector();
      const failedOnce = new Set<string>();
      await broker.subscribe(
        {
          topic,
          group: uniqueName('g'),
          order: 'concurrent',
          retry: { attempts: 3, backoff: { initialMs: 10, multiplier: 1, maxMs: 10 } },
        },
        (d: Delivery) => {
          if (!failedOnce.has(d.id)) {
            failedOnce.add(d.id);
            throw new Error('first attempt fails');
          }
          collector.deliveries.push(d);
        },
      );
      const producer = broker.producer();
      await producer.send({ topic, id: 'retried', body: 1 });
      await producer.send({ topic, id: 'delayed', body: 2, delayMs: 700 });
      await collector.waitForCount(2);
      const processes = await waitFor(() => {
        const found = spans(`process ${topic}`);
        return found.length === 4 ? found : undefined;
      });
      for (const id of ['retried', 'delayed']) {
        const send = spans(`send ${topic}`).find(
          (s) => s.attributes['messaging.message.id'] === id,
        ) as ReadableSpan;
        const attempts = processes.filter((p) => p.attributes['messaging.message.id'] === id);
        expect(attempts.map((p) => p.attributes['mqkit.delivery.attempt']).sort()).toEqual([1, 2]);
        expect(attempts.every((p) => linksTo(p, send))).toBe(true);
      }
      await producer.close();
    } finally {
      await broker.close();
    }
  });

  it('sendBatch: a create span per message and one send span linked to them; a batch handler gets one process span linked to each', async () => {
    const { broker, spans } = await tracedBroker(url());
    try {
      const topic = uniqueName('otel-batch');
      await broker.ensureTopic(topic);
      const collector = new Collector();
      await broker.subscribe(
        { topic, group: uniqueName('g'), order: 'concurrent', batch: { maxSize: 10, maxWaitMs: 200 } },
        (deliveries: readonly Delivery[]) => {
          for (const d of deliveries) collector.deliveries.push(d);
        },
      );
      const producer = broker.producer();
      await producer.sendBatch([
        { topic, body: 1 },
        { topic, body: 2 },
        { topic, body: 3 },
      ]);
      await collector.waitForCount(3);
      const creates = spans(`create ${topic}`);
      expect(creates).toHaveLength(3);
      expect(creates.every((s) => s.kind === SpanKind.PRODUCER)).toBe(true);
      const send = spans(`send ${topic}`)[0] as ReadableSpan;
      expect(send.kind).toBe(SpanKind.CLIENT);
      expect(send.attributes['messaging.batch.message_count']).toBe(3);
      expect(creates.every((c) => linksTo(send, c))).toBe(true);
      // Every create span linked from a batch's process span (a broker redelivery may add more).
      const processes = await waitFor(() => {
        const found = spans(`process ${topic}`);
        return creates.every((c) => found.some((p) => linksTo(p, c))) ? found : undefined;
      });
      // Each create span is linked from the batch that carried its message.
      for (const create of creates) expect(processes.some((p) => linksTo(p, create))).toBe(true);
      if (processes.length === 1) expect(processes[0]?.attributes['messaging.batch.message_count']).toBe(3);
      // The engine acknowledged each message of the batch: one ack span each, under its batch's span.
      const acks = await waitFor(() => {
        const found = spans(`ack ${topic}`);
        return new Set(found.map((a) => a.attributes['messaging.message.id'])).size === 3 ? found : undefined;
      });
      expect(acks.every((ack) => processes.some((p) => childOf(ack, p)))).toBe(true);
      await producer.close();
    } finally {
      await broker.close();
    }
  });

  it('pull consumption: a process span per delivery, ended when the loop asks for the next; fail() marks it failed', async () => {
    const { broker, spans } = await tracedBroker(url());
    try {
      const topic = uniqueName('otel-pull');
      await broker.ensureTopic(topic);
      const stream = broker.consume({
        topic,
        group: uniqueName('g'),
        retry: { attempts: 2, backoff: { initialMs: 10, multiplier: 1, maxMs: 10 } },
        deadLetter: 'discard',
      });
      await stream.ready;
      const producer = broker.producer();
      await producer.send({ topic, id: 'pull-ok', body: 1 });
      await producer.send({ topic, id: 'pull-bad', body: 2 });
      let failed = 0;
      for await (const delivery of stream) {
        if (delivery.id === 'pull-bad') {
          stream.fail(delivery, new TypeError('bad body'));
          if (++failed === 2) break;
        }
      }
      const processes = spans(`process ${topic}`);
      const ok = processes.filter((p) => p.attributes['messaging.message.id'] === 'pull-ok');
      const bad = processes.filter((p) => p.attributes['messaging.message.id'] === 'pull-bad');
      expect(ok).toHaveLength(1);
      expect(ok[0]?.status.code).not.toBe(SpanStatusCode.ERROR);
      expect(bad).toHaveLength(2);
      expect(bad.every((p) => p.attributes['error.type'] === 'TypeError')).toBe(true);
      // Asking for the next delivery acknowledged pull-ok; pull-bad, failed twice, was never acknowledged.
      const acks = spans(`ack ${topic}`);
      expect(acks.map((a) => a.attributes['messaging.message.id'])).toEqual(['pull-ok']);
      expect(childOf(acks[0] as ReadableSpan, ok[0] as ReadableSpan)).toBe(true);
      const sendOk = spans(`send ${topic}`).find((s) => s.attributes['messaging.message.id'] === 'pull-ok');
      expect(linksTo(ok[0] as ReadableSpan, sendOk as ReadableSpan)).toBe(true);
      await producer.close();
    } finally {
      await broker.close();
    }
  });
}

describe('OpenTelemetry: memory', () => {
  otelSuite('memory', () => `memory://${uniqueName('otel')}`);

  it('a message that already carries a traceparent (a re-send, an outbox row) continues that trace when no span is active', async () => {
    const { broker, spans, tracer } = await tracedBroker('memory://');
    try {
      const writer = tracer.startSpan('write order');
      const headers: Record<string, string> = {};
      propagation.inject(trace.setSpan(context.active(), writer), headers);
      writer.end();
      const topic = uniqueName('resend');
      const producer = broker.producer();
      const message = { topic, body: 1, headers };
      await producer.send(message);
      const send = spans(`send ${topic}`)[0] as ReadableSpan;
      expect(childOf(send, spans('write order')[0] as ReadableSpan)).toBe(true);
      expect(message.headers).toBe(headers); // the caller's message is not changed
      expect(Object.keys(headers)).toEqual(['traceparent']);
    } finally {
      await broker.close();
    }
  });

  it('examples/otel-console.ts prints the trace of an order and the messaging metrics', async () => {
    const script = fileURLToPath(new URL('../../examples/otel-console.ts', import.meta.url));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, MQ_URL: 'memory://' },
      timeout: 60_000,
    });
    for (const span of ['POST /orders', 'send orders-', 'process orders-', 'retry orders-', 'ack orders-'])
      expect(stdout).toContain(`name: '${span}`);
    for (const metric of ['messaging.client.sent.messages', 'messaging.process.duration'])
      expect(stdout).toContain(`name: '${metric}'`);
  }, 90_000);

  it("a process span has no parent by default, even when the message was sent inside a span (memory hands it over in the sender's async context)", async () => {
    const { broker, spans, tracer } = await tracedBroker('memory://');
    try {
      const topic = uniqueName('root');
      const collector = new Collector();
      await broker.subscribe({ topic, group: 'g' }, (d: Delivery) => {
        collector.deliveries.push(d);
      });
      const producer = broker.producer();
      await tracer.startActiveSpan('request', async (request) => {
        await producer.send({ topic, body: 1 });
        await collector.waitForCount(1);
        request.end();
      });
      const process = await waitFor(() => spans(`process ${topic}`)[0]);
      const send = spans(`send ${topic}`)[0] as ReadableSpan;
      expect(childOf(send, spans('request')[0] as ReadableSpan)).toBe(true);
      expect(process.parentSpanContext).toBeUndefined();
      expect(process.spanContext().traceId).not.toBe(send.spanContext().traceId);
      expect(linksTo(process, send)).toBe(true);
    } finally {
      await broker.close();
    }
  });

  it('a subscription closed with refused options stays open, and a later close() closes it', async () => {
    const { broker } = await tracedBroker('memory://');
    try {
      const topic = uniqueName('close');
      const collector = new Collector();
      const sub = await broker.subscribe({ topic, group: 'g' }, (d: Delivery) => {
        collector.deliveries.push(d);
      });
      await expect(sub.close({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'CONFIG' });
      const producer = broker.producer();
      await producer.send({ topic, body: 1 });
      await collector.waitForCount(1);
      await sub.close();
      await producer.send({ topic, body: 2 });
      const backlog = await waitFor(async () => {
        const b = await broker.backlog(topic, 'g');
        return b.total === 1 ? b : undefined;
      });
      expect(backlog.total).toBe(1); // the second message waits: nobody reads the group any more
      expect(collector.deliveries).toHaveLength(1);
    } finally {
      await broker.close();
    }
  });

  it('pull: leaving the loop right after a delivery gives it up (a nack span, no ack): it comes again', async () => {
    const { broker, spans } = await tracedBroker('memory://');
    try {
      const topic = uniqueName('pull-break');
      const group = uniqueName('g');
      const producer = broker.producer();
      await producer.send({ topic, id: 'given-up', body: 1 });
      for await (const delivery of broker.consume({ topic, group })) {
        expect(delivery.id).toBe('given-up');
        break;
      }
      expect(spans(`ack ${topic}`)).toEqual([]);
      const nack = spans(`nack ${topic}`);
      expect(nack.map((s) => s.attributes['messaging.message.id'])).toEqual(['given-up']);
      expect(childOf(nack[0] as ReadableSpan, spans(`process ${topic}`)[0] as ReadableSpan)).toBe(true);
      for await (const delivery of broker.consume({ topic, group })) {
        expect(delivery.id).toBe('given-up');
        break;
      }
    } finally {
      await broker.close();
    }
  });

  it('instrumented before an SDK is registered: untraced at first, traced within 1024 messages once the global tracer provider gets one', async () => {
    const broker = instrument(await connect('memory://')); // the global (proxy) tracer provider, no SDK yet
    const exporter = new InMemorySpanExporter();
    try {
      const topic = uniqueName('late-sdk');
      const producer = broker.producer();
      for (let i = 0; i < 10; i++) await producer.send({ topic, body: i });
      trace.setGlobalTracerProvider(
        new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
      );
      let sent = 0;
      while (exporter.getFinishedSpans().length === 0 && sent < 1100) {
        await producer.send({ topic, body: sent });
        sent++;
      }
      expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual([`send ${topic}`]);
      expect(sent).toBeLessThanOrEqual(1024);
      // From then on every message is traced.
      await producer.send({ topic, body: 'next' });
      expect(exporter.getFinishedSpans()).toHaveLength(2);
    } finally {
      trace.disable();
      await broker.close();
    }
  });

  it("an outbox row carries its writer's traceparent: the relay's create span continues the writer's trace, and the consumer links to it", async () => {
    const pool = new pg.Pool({ connectionString: inject('pgUrl'), max: 4 });
    const { broker, spans, tracer } = await tracedBroker('memory://');
    try {
      const table = await freshOutboxTable(pool);
      const topic = uniqueName('outbox-trace');
      const collector = new Collector();
      await broker.subscribe({ topic, group: 'g' }, (d: Delivery) => {
        collector.deliveries.push(d);
      });
      const outbox = createOutbox({ table });
      const writer = tracer.startSpan('place order');
      const headers: Record<string, string> = {};
      propagation.inject(trace.setSpan(context.active(), writer), headers);
      await inTransaction(pool, (tx) => outbox.add(tx, { topic, key: 'order-1', body: { n: 1 }, headers }));
      writer.end();
      const relay = await startOutboxRelay({ pool, table, producer: broker.producer(), logger: quietLogger });
      try {
        await collector.waitForCount(1);
      } finally {
        await relay.close();
      }
      const create = spans(`create ${topic}`)[0] as ReadableSpan;
      expect(childOf(create, spans('place order')[0] as ReadableSpan)).toBe(true);
      const process = await waitFor(() => spans(`process ${topic}`)[0]);
      expect(linksTo(process, create)).toBe(true);
    } finally {
      await broker.close();
      await dropOutboxTables(pool);
      await pool.end();
    }
  });

  it('a tracer that throws changes nothing: sends resolve, each message is handled once and acknowledged', async () => {
    const broken = {
      getTracer: () => ({
        startSpan: () => {
          throw new Error('broken tracer');
        },
        startActiveSpan: () => {
          throw new Error('broken tracer');
        },
      }),
    };
    const broker = instrument(await connect('memory://'), { tracerProvider: broken as never });
    try {
      const topic = uniqueName('broken');
      const collector = new Collector();
      collector.watch(broker, topic);
      await broker.subscribe({ topic, group: 'g' }, collector.handler());
      const producer = broker.producer();
      const sent = await producer.send({ topic, body: 1 });
      await producer.sendBatch([{ topic, body: 2 }]);
      producer.sendOneWay({ topic, body: 3 });
      await collector.waitForCount(3);
      await collector.waitForOutcome(sent.id, 'handled');
      expect(collector.deliveries.map((d) => d.attempt)).toEqual([1, 1, 1]);
      for await (const d of broker.consume({ topic, group: 'pull' })) {
        expect(d.body).toBe(1);
        break;
      }
    } finally {
      await broker.close();
    }
  });

  it('options are checked: unknown keys and wrong types are refused naming the field', async () => {
    const plain = await connect('memory://');
    try {
      expect(() => instrument(plain, { tracer: {} } as never)).toThrow(/instrument\.tracer\b/);
      expect(() => instrument(plain, { processSpanParent: 'parent' as never })).toThrow(
        /instrument\.processSpanParent/,
      );
      expect(() => instrument(plain, { tracerProvider: {} as never })).toThrow(/instrument\.tracerProvider/);
      expect(() => instrument(instrument(plain))).toThrow(/instrumented already/);
      expect(() => instrument(undefined as never)).toThrow(/instrument\.broker/);
    } finally {
      await plain.close();
    }
  });

  it('without an SDK (the API no-op tracer) messages flow and carry no trace context', async () => {
    const broker = instrument(await connect('memory://'), {});
    try {
      const topic = uniqueName('noop');
      const collector = new Collector();
      await broker.subscribe({ topic, group: 'g' }, (d: Delivery) => {
        collector.deliveries.push(d);
      });
      await broker.producer().send({ topic, body: 1 });
      await collector.waitForCount(1);
      expect(collector.deliveries[0]?.headers.traceparent).toBeUndefined();
    } finally {
      await broker.close();
    }
  });
});

describe('OpenTelemetry: kafka', () => {
  const kafkaUrl = inject('kafkaUrl');
  otelSuite('kafka', () => kafkaUrl);
});

describe('OpenTelemetry: rabbitmq', () => {
  const amqpUrl = inject('amqpUrl');
  otelSuite('rabbitmq', () => amqpUrl);
});

import {
  type Context,
  type Counter,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type Histogram,
  isSpanContextValid,
  type Link,
  type Meter,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { DeliveryEvent } from '../core/events.js';
import type { Delivery, Headers } from '../core/message.js';
import {
  ATTR,
  type Attributes,
  brokerMessageAttributes,
  DURATION_BUCKETS,
  errorType,
  METRIC,
  systemAttributes,
} from './conventions.js';

/** Where a process span's parent comes from; see `OtelOptions.processSpanParent`. */
export type ProcessSpanParent = 'active' | 'creation';

/**
 * Process spans whose settle events have not come yet, by message. A message the engine gives
 * up without settling (a revoke, a close that timed out) leaves an entry behind: the map keeps
 * the newest entries only.
 */
const MAX_PENDING_SETTLES = 10_000;

/** A started process span and what finishing it needs. */
export interface ProcessSpan {
  readonly span: Span;
  readonly context: Context;
  readonly startedAt: number;
  readonly metricAttributes: Attributes;
}

/**
 * The tracing and metrics of one instrumented broker: spans and their attributes, the context in
 * headers, the instruments, and the settle spans made from the engine's events. Every method
 * runs on the message path: no work beyond the API's own when the tracer does not record.
 */
export class Instrumentation {
  readonly system: Attributes;
  private readonly operationDuration: Histogram;
  private readonly sentMessages: Counter;
  private readonly consumedMessages: Counter;
  private readonly processDuration: Histogram;
  private readonly pendingSettles = new Map<string, SpanContext>();

  constructor(
    readonly kind: string,
    private readonly tracer: Tracer,
    meter: Meter,
    private readonly propagator: TextMapPropagator | undefined,
    private readonly processSpanParent: ProcessSpanParent,
  ) {
    this.system = systemAttributes(kind);
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS } };
    this.operationDuration = meter.createHistogram(METRIC.operationDuration, {
      ...seconds,
      description: 'Duration of a messaging operation initiated by a producer or consumer client (send).',
    });
    this.sentMessages = meter.createCounter(METRIC.sentMessages, {
      unit: '{message}',
      description: 'Messages a producer attempted to send to the broker.',
    });
    this.consumedMessages = meter.createCounter(METRIC.consumedMessages, {
      unit: '{message}',
      description: 'Messages delivered to the application (handler or pull loop).',
    });
    this.processDuration = meter.createHistogram(METRIC.processDuration, {
      ...seconds,
      description: 'Duration of processing operations (a handler call, or a pull loop iteration).',
    });
  }

  // ---- producing ----

  /**
   * Starts a `send` (or `create`) span for a message to `topic` and returns the headers to send
   * it with: the message's own plus the span's context. With no active span, a `traceparent`
   * the message already carries (a re-send, an outbox row) is the parent, so the trace goes on.
   */
  startSend(
    operation: 'send' | 'create',
    topic: string,
    message: {
      id: string;
      key?: string | undefined;
      tag?: string | undefined;
      headers?: Headers | undefined;
    },
  ): { span: Span; headers: Headers } {
    const active = context.active();
    const parent =
      trace.getSpan(active) === undefined && message.headers !== undefined
        ? this.extract(active, message.headers)
        : active;
    const attributes: Attributes = {
      ...this.system,
      [ATTR.destination]: topic,
      [ATTR.operationType]: operation,
      [ATTR.operationName]: operation,
      [ATTR.messageId]: message.id,
    };
    brokerMessageAttributes(this.kind, message, attributes);
    const span = this.tracer.startSpan(
      `${operation} ${topic}`,
      { kind: SpanKind.PRODUCER, attributes },
      parent,
    );
    const headers: Headers = { ...message.headers };
    this.inject(trace.setSpan(parent, span), headers);
    return { span, headers };
  }

  /** Starts the span of a `sendBatch` that carries `creations` (the messages' create spans). */
  startBatchSend(destination: string | undefined, creations: readonly Span[]): Span {
    const attributes: Attributes = {
      ...this.system,
      [ATTR.operationType]: 'send',
      [ATTR.operationName]: 'send',
      [ATTR.batchCount]: creations.length,
    };
    if (destination !== undefined) attributes[ATTR.destination] = destination;
    const links: Link[] = [];
    for (const creation of creations) {
      const spanContext = creation.spanContext();
      if (isSpanContextValid(spanContext)) links.push({ context: spanContext });
    }
    return this.tracer.startSpan(destination === undefined ? 'send' : `send ${destination}`, {
      kind: SpanKind.CLIENT,
      attributes,
      links,
    });
  }

  /** Ends a send span and records the send's duration and message count. */
  endSend(
    span: Span,
    startedAt: number,
    destination: string | undefined,
    messages: number,
    error: unknown,
    result?: { partition?: number | undefined; offset?: string | undefined },
  ): void {
    const attributes: Attributes = { ...this.system, [ATTR.operationName]: 'send' };
    if (destination !== undefined) attributes[ATTR.destination] = destination;
    if (error !== undefined) {
      attributes[ATTR.errorType] = errorType(error);
      failSpan(span, error);
    } else if (result !== undefined && span.isRecording()) {
      const extra: Attributes = {};
      if (result.partition !== undefined) extra[ATTR.partition] = String(result.partition);
      if (this.kind === 'kafka') brokerMessageAttributes('kafka', { offset: result.offset }, extra);
      span.setAttributes(extra);
    }
    span.end();
    this.operationDuration.record((performance.now() - startedAt) / 1000, attributes);
    this.sentMessages.add(messages, attributes);
  }

  // ---- consuming ----

  /**
   * Starts the `process` span of one delivery (or a batch of them), linked to each message's
   * creation context. Its parent is the active context, or with `processSpanParent: 'creation'`
   * a single message's creation context.
   */
  startProcess(deliveries: readonly Delivery<unknown>[], group: string | undefined): ProcessSpan {
    const first = deliveries[0] as Delivery<unknown>;
    const links: Link[] = [];
    let creation: Context | undefined;
    for (const delivery of deliveries) {
      const extracted = this.extract(ROOT_CONTEXT, delivery.headers);
      const spanContext = trace.getSpanContext(extracted);
      if (spanContext !== undefined && isSpanContextValid(spanContext)) {
        links.push({ context: spanContext });
        creation = extracted;
      }
    }
    const active = context.active();
    const parent =
      this.processSpanParent === 'creation' && deliveries.length === 1 && creation !== undefined
        ? creation
        : active;
    const metricAttributes: Attributes = {
      ...this.system,
      [ATTR.operationName]: 'process',
      [ATTR.destination]: first.topic,
    };
    if (group !== undefined) metricAttributes[ATTR.group] = group;
    if (first.partition !== undefined) metricAttributes[ATTR.partition] = String(first.partition);
    const attributes: Attributes = { ...metricAttributes, [ATTR.operationType]: 'process' };
    if (deliveries.length === 1) {
      attributes[ATTR.messageId] = first.id;
      attributes[ATTR.attempt] = first.attempt;
      brokerMessageAttributes(this.kind, first, attributes);
    } else {
      attributes[ATTR.batchCount] = deliveries.length;
    }
    const span = this.tracer.startSpan(
      `process ${first.topic}`,
      { kind: SpanKind.CONSUMER, attributes, links },
      parent,
    );
    const spanContext = span.spanContext();
    for (const delivery of deliveries) this.remember(delivery, spanContext);
    this.consumedMessages.add(deliveries.length, metricAttributes);
    return { span, context: trace.setSpan(parent, span), startedAt: performance.now(), metricAttributes };
  }

  /** Ends a process span; `error` is what the handler threw (undefined: it resolved). */
  endProcess(process: ProcessSpan, error?: unknown): void {
    let attributes = process.metricAttributes;
    if (error !== undefined) {
      attributes = { ...attributes, [ATTR.errorType]: errorType(error) };
      failSpan(process.span, error);
    }
    process.span.end();
    this.processDuration.record((performance.now() - process.startedAt) / 1000, attributes);
  }

  /**
   * A `settle` span (ack, retry, dead_letter) for an engine event, as a child of the process
   * span of the same message. Events of messages no instrumented subscription processed (a
   * subscription made on the broker before it was instrumented) make no span.
   */
  settle(operation: 'ack' | 'retry' | 'dead_letter', event: DeliveryEvent, extra?: Attributes): void {
    const key = settleKey(event.topic, event.partition, event.id);
    const processContext = this.pendingSettles.get(key);
    if (processContext === undefined) return;
    this.pendingSettles.delete(key);
    const attributes: Attributes = {
      ...this.system,
      [ATTR.destination]: event.topic,
      [ATTR.group]: event.group,
      [ATTR.messageId]: event.id,
      [ATTR.operationType]: 'settle',
      [ATTR.operationName]: operation,
      ...extra,
    };
    if (event.partition !== undefined) attributes[ATTR.partition] = String(event.partition);
    const parent = trace.setSpanContext(ROOT_CONTEXT, processContext);
    this.tracer.startSpan(`${operation} ${event.topic}`, { kind: SpanKind.CLIENT, attributes }, parent).end();
  }

  private remember(delivery: Delivery<unknown>, spanContext: SpanContext): void {
    if (!isSpanContextValid(spanContext)) return;
    const key = settleKey(delivery.topic, delivery.partition, delivery.id);
    this.pendingSettles.delete(key);
    this.pendingSettles.set(key, spanContext);
    if (this.pendingSettles.size > MAX_PENDING_SETTLES) {
      const oldest = this.pendingSettles.keys().next().value as string;
      this.pendingSettles.delete(oldest);
    }
  }

  private extract(into: Context, headers: Headers): Context {
    if (this.propagator !== undefined) return this.propagator.extract(into, headers, defaultTextMapGetter);
    return propagation.extract(into, headers, defaultTextMapGetter);
  }

  private inject(from: Context, headers: Headers): void {
    if (this.propagator !== undefined) this.propagator.inject(from, headers, defaultTextMapSetter);
    else propagation.inject(from, headers, defaultTextMapSetter);
  }
}

/**
 * Identifies a message among those in process. Two instrumented groups of one process handling
 * the same message at once share a key: a settle span may then hang under the other group's
 * process span (of the same trace).
 */
function settleKey(topic: string, partition: number | undefined, id: string): string {
  return `${topic}\u0000${partition ?? ''}\u0000${id}`;
}

function failSpan(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  span.setAttribute(ATTR.errorType, errorType(error));
  if (error instanceof Error) span.recordException(error);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

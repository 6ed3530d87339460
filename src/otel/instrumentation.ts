import {
  type Context,
  type Counter,
  context,
  createNoopMeter,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type Histogram,
  INVALID_TRACEID,
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
export type ProcessSpanParent = 'none' | 'creation';

/**
 * Process spans whose settle events have not come yet, by message. A message whose last attempt
 * the engine gives up on after it failed (a retry wait cut short by a revoke or a close, a
 * dead-letter copy abandoned) leaves an entry behind: the map keeps the newest entries only.
 */
const MAX_PENDING_SETTLES = 10_000;

/** Attribute sets kept for reuse (per topic, partition and group); more distinct ones start it afresh. */
const MAX_CACHED_ATTRIBUTE_SETS = 1_000;

/** A started process span and what finishing it needs. */
export interface ProcessSpan {
  readonly span: Span;
  readonly scope: ProcessScope;
  /** Whether the span takes part in a trace (false with the API's no-op tracer). */
  readonly traced: boolean;
  /** The context to run the handler in: the span's, or the active one when the span is a no-op. */
  readonly context: Context;
  readonly startedAt: number;
  readonly metricAttributes: Attributes;
}

/** A started send or create span and the headers its message goes with. */
export interface SendSpan {
  readonly span: Span;
  /** The message's headers with the span's context, or the message's own (the same object) when the span is a no-op. */
  readonly headers: Headers | undefined;
  /** Whether the span records: only then do attributes of the message matter. */
  readonly recording: boolean;
}

/**
 * The tracing and metrics of one instrumented broker: spans and their attributes, the context in
 * headers, the instruments, and the settle spans made from the engine's events.
 *
 * Every method runs on the message path, so the work follows what the tracer does: spans start
 * with attributes shared by every message of a topic (reused objects, enough for a sampler to
 * decide on); a recording span then gets the message's own attributes and links; a span with no
 * valid context (the API's no-op tracer, no SDK) leaves the message and its headers untouched,
 * and until a span is traced the engine's events are not listened to, so that without an SDK
 * the engine builds no event payloads either.
 */
export class Instrumentation {
  readonly system: Attributes;
  private readonly operationDuration: Histogram;
  private readonly sentMessages: Counter;
  private readonly consumedMessages: Counter;
  private readonly processDuration: Histogram;
  private readonly pendingSettles = new Map<string, { context: SpanContext; ackByEvent: boolean }>();
  private readonly sendSets = new Map<string, Attributes>();
  private readonly createSets = new Map<string, Attributes>();
  private listening = false;
  private listeningToAcks = false;
  /** Whether the last span started took part in a trace; until then, true (so the first gets its links). */
  private tracing = true;
  /** Whether the meter records: the API's no-op meter (no SDK) never will, as metrics have no late registration. */
  private readonly metered: boolean;
  private idleCount = 0;

  constructor(
    readonly kind: string,
    private readonly tracer: Tracer,
    meter: Meter,
    private readonly propagator: TextMapPropagator | undefined,
    private readonly processSpanParent: ProcessSpanParent,
    /**
     * Subscribes to the engine's `retried` and `dead-lettered` events; called once, at the first
     * traced delivery. Until then no listener makes the engine build event payloads.
     */
    private readonly listen: () => void,
    /** Subscribes to the engine's `handled` events (acks of batch handlers); called once, at the first traced batch. */
    private readonly listenToAcks: () => void,
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
    this.metered =
      this.sentMessages.constructor !== createNoopMeter().createCounter(METRIC.sentMessages).constructor;
  }

  /**
   * True when this message may skip instrumentation altogether: the meter is the no-op one and
   * the last span was not traced (the API's no-op tracer: no SDK). One message in 1024 takes
   * the full path all the same, so a tracer registered later is found (the global tracer
   * provider delegates to an SDK registered after `instrument`).
   */
  idle(): boolean {
    if (this.tracing || this.metered) return false;
    return (++this.idleCount & 1023) !== 0;
  }

  // ---- producing ----

  /**
   * Starts a `send` (or `create`) span for a message to `topic` and returns the headers to send
   * it with: a copy of the message's own plus the span's context. With no active span, a
   * `traceparent` the message already carries (a re-send, an outbox row) is the parent, so the
   * trace goes on.
   */
  startSend(
    operation: 'send' | 'create',
    topic: string,
    message: {
      id?: string | undefined;
      key?: string | undefined;
      tag?: string | undefined;
      headers?: Headers | undefined;
    },
  ): SendSpan {
    const active = context.active();
    const parent =
      message.headers !== undefined && trace.getSpan(active) === undefined
        ? this.extract(active, message.headers)
        : active;
    const span = this.tracer.startSpan(
      `${operation} ${topic}`,
      { kind: SpanKind.PRODUCER, attributes: this.sendAttributes(operation, topic) },
      parent,
    );
    this.tracing = traced(span.spanContext());
    if (!this.tracing) return { span, headers: message.headers, recording: false };
    const recording = span.isRecording();
    if (recording) {
      const own: Attributes = {};
      if (message.id !== undefined) own[ATTR.messageId] = message.id;
      brokerMessageAttributes(this.kind, message, own);
      span.setAttributes(own);
    }
    const headers: Headers = { ...message.headers };
    // A re-sent message's old `tracestate` (or any field of the propagator) must not outlive its `traceparent`.
    if (message.headers !== undefined) for (const field of this.fields()) delete headers[field];
    this.inject(trace.setSpan(parent, span), headers);
    return { span, headers, recording };
  }

  /** Starts the span of a `sendBatch` that carries `creations` (the messages' create spans). */
  startBatchSend(destination: string | undefined, creations: readonly Span[]): Span {
    const attributes: Attributes = {
      ...this.sendAttributes('send', destination),
      [ATTR.batchCount]: creations.length,
    };
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
    result?: { id: string; partition?: number | undefined; offset?: string | undefined },
  ): void {
    let attributes = this.sendAttributes('send', destination);
    if (error !== undefined) {
      attributes = { ...attributes, [ATTR.errorType]: errorType(error) };
      failSpan(span, error);
    } else if (result !== undefined && span.isRecording()) {
      const own: Attributes = { [ATTR.messageId]: result.id };
      if (result.partition !== undefined) own[ATTR.partition] = String(result.partition);
      if (this.kind === 'kafka') brokerMessageAttributes('kafka', { offset: result.offset }, own);
      span.setAttributes(own);
    }
    span.end();
    this.operationDuration.record((performance.now() - startedAt) / 1000, attributes);
    this.sentMessages.add(messages, attributes);
  }

  // ---- consuming ----

  /**
   * Starts the `process` span of one delivery (or a batch of them), linked to each message's
   * creation context. Its parent is none (a trace of its own: whatever context happens to be
   * active where the broker calls the handler, such as the span that called `subscribe`, is
   * not the message's), or with `processSpanParent: 'creation'` a single message's creation
   * context. Runs in the handler wrapper: it must not throw (see `TracedBroker`).
   */
  startProcess(deliveries: readonly Delivery<unknown>[], scope: ProcessScope): ProcessSpan {
    const first = deliveries[0] as Delivery<unknown>;
    const shared = scope.attributes(first.topic, first.partition);
    const metricAttributes = shared.metric;
    const active = context.active();
    // Links are read only while spans are traced: with the API's no-op tracer the headers are not parsed.
    const links = this.tracing ? this.creationLinks(deliveries) : undefined;
    let parent = ROOT_CONTEXT;
    if (this.processSpanParent === 'creation' && deliveries.length === 1 && links?.length === 1)
      parent = trace.setSpanContext(ROOT_CONTEXT, (links[0] as Link).context);
    const span = this.tracer.startSpan(
      `process ${first.topic}`,
      { kind: SpanKind.CONSUMER, attributes: shared.span, links },
      parent,
    );
    this.consumedMessages.add(deliveries.length, metricAttributes);
    const startedAt = performance.now();
    const spanContext = span.spanContext();
    this.tracing = traced(spanContext);
    if (!this.tracing) return { span, scope, traced: false, context: active, startedAt, metricAttributes };
    if (span.isRecording()) {
      const own: Attributes = {};
      if (deliveries.length === 1) {
        own[ATTR.messageId] = first.id;
        own[ATTR.attempt] = first.attempt;
        brokerMessageAttributes(this.kind, first, own);
      } else {
        own[ATTR.batchCount] = deliveries.length;
      }
      span.setAttributes(own);
    }
    for (const delivery of deliveries) this.remember(delivery, scope, spanContext);
    return { span, scope, traced: true, context: trace.setSpan(active, span), startedAt, metricAttributes };
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
   * The settle span of a delivery whose handler (or pull loop iteration) finished: `ack` when
   * the engine acknowledges it now, `nack` when it gives it up (revoked, closing, a pull loop
   * left) and the broker delivers it again. Made here rather than from the engine's `handled`
   * event, which the engine would otherwise build for every message.
   */
  finished(process: ProcessSpan, delivery: Delivery<unknown>, outcome: 'ack' | 'nack'): void {
    if (!process.traced) return;
    this.pendingSettles.delete(
      settleKey(process.scope.group, delivery.topic, delivery.partition, delivery.id),
    );
    this.settleSpan(
      outcome,
      process.span.spanContext(),
      delivery.topic,
      process.scope.group,
      delivery.partition,
      delivery.id,
    );
  }

  /**
   * A `settle` span for an engine event (`retried`, `dead-lettered`, and `handled` for batch
   * handlers), as a child of the process span of the same message. Events of messages no
   * instrumented subscription processed make no span.
   */
  settle(operation: 'ack' | 'retry' | 'dead_letter', event: DeliveryEvent, extra?: Attributes): void {
    if (this.pendingSettles.size === 0) return;
    let key = settleKey(event.group, event.topic, event.partition, event.id);
    let pending = this.pendingSettles.get(key);
    if (pending === undefined) {
      // A pull stream in broadcasting mode does not know its group's name.
      key = settleKey(undefined, event.topic, event.partition, event.id);
      pending = this.pendingSettles.get(key);
    }
    if (pending === undefined || (operation === 'ack' && !pending.ackByEvent)) return;
    this.pendingSettles.delete(key);
    this.settleSpan(operation, pending.context, event.topic, event.group, event.partition, event.id, extra);
  }

  private settleSpan(
    operation: 'ack' | 'nack' | 'retry' | 'dead_letter',
    processContext: SpanContext,
    topic: string,
    group: string | undefined,
    partition: number | undefined,
    id: string,
    extra?: Attributes,
  ): void {
    const attributes: Attributes = {
      ...this.system,
      [ATTR.destination]: topic,
      [ATTR.messageId]: id,
      [ATTR.operationType]: 'settle',
      [ATTR.operationName]: operation,
      ...extra,
    };
    if (group !== undefined) attributes[ATTR.group] = group;
    if (partition !== undefined) attributes[ATTR.partition] = String(partition);
    const parent = trace.setSpanContext(ROOT_CONTEXT, processContext);
    this.tracer.startSpan(`${operation} ${topic}`, { kind: SpanKind.CLIENT, attributes }, parent).end();
  }

  /** The valid creation contexts in the deliveries' headers. */
  private creationLinks(deliveries: readonly Delivery<unknown>[]): Link[] {
    const links: Link[] = [];
    for (const delivery of deliveries) {
      const linked = trace.getSpanContext(this.extract(ROOT_CONTEXT, delivery.headers));
      if (linked !== undefined && isSpanContextValid(linked)) links.push({ context: linked });
    }
    return links;
  }

  /** System, destination and operation: the attributes every send to `topic` shares (span start and metrics). */
  private sendAttributes(operation: 'send' | 'create', topic: string | undefined): Attributes {
    const sets = operation === 'send' ? this.sendSets : this.createSets;
    const key = topic ?? '';
    let attributes = sets.get(key);
    if (attributes === undefined) {
      attributes = { ...this.system, [ATTR.operationType]: operation, [ATTR.operationName]: operation };
      if (topic !== undefined) attributes[ATTR.destination] = topic;
      if (sets.size >= MAX_CACHED_ATTRIBUTE_SETS) sets.clear();
      sets.set(key, Object.freeze(attributes));
    }
    return attributes;
  }

  /**
   * What the process spans of one subscription (or pull stream) of `group` share. A batch
   * handler's deliveries get their ack spans from the engine's `handled` events
   * (`ackedByEvents`), since only the engine knows which of a batch it acknowledges.
   */
  processScope(group: string | undefined, ackedByEvents = false): ProcessScope {
    return new ProcessScope(this.system, group, ackedByEvents);
  }

  private remember(delivery: Delivery<unknown>, scope: ProcessScope, spanContext: SpanContext): void {
    if (!this.listening) {
      this.listening = true;
      this.listen();
    }
    if (scope.ackedByEvents && !this.listeningToAcks) {
      this.listeningToAcks = true;
      this.listenToAcks();
    }
    const key = settleKey(scope.group, delivery.topic, delivery.partition, delivery.id);
    this.pendingSettles.delete(key);
    this.pendingSettles.set(key, { context: spanContext, ackByEvent: scope.ackedByEvents });
    if (this.pendingSettles.size > MAX_PENDING_SETTLES) {
      const oldest = this.pendingSettles.keys().next().value as string;
      this.pendingSettles.delete(oldest);
    }
  }

  private extract(into: Context, headers: Headers): Context {
    if (this.propagator !== undefined) return this.propagator.extract(into, headers, defaultTextMapGetter);
    return propagation.extract(into, headers, defaultTextMapGetter);
  }

  private fields(): string[] {
    return this.propagator !== undefined ? this.propagator.fields() : propagation.fields();
  }

  private inject(from: Context, headers: Headers): void {
    if (this.propagator !== undefined) this.propagator.inject(from, headers, defaultTextMapSetter);
    else propagation.inject(from, headers, defaultTextMapSetter);
  }
}

/**
 * What every delivery of one partition to one subscription shares, made once: the span's start
 * attributes, and the metrics' (without the operation type).
 */
export class ProcessScope {
  private readonly byPartition = new Map<string, { span: Attributes; metric: Attributes }>();

  constructor(
    private readonly system: Attributes,
    private groupName: string | undefined,
    readonly ackedByEvents: boolean,
  ) {}

  get group(): string | undefined {
    return this.groupName;
  }

  /** Names the group once known (a broadcasting subscription's is made up when it starts). */
  set group(group: string) {
    if (group === this.groupName) return;
    this.groupName = group;
    this.byPartition.clear();
  }

  attributes(topic: string, partition: number | undefined): { span: Attributes; metric: Attributes } {
    const key = partition === undefined ? topic : `${topic}\u0000${partition}`;
    let sets = this.byPartition.get(key);
    if (sets === undefined) {
      const metric: Attributes = {
        ...this.system,
        [ATTR.operationName]: 'process',
        [ATTR.destination]: topic,
      };
      if (this.groupName !== undefined) metric[ATTR.group] = this.groupName;
      if (partition !== undefined) metric[ATTR.partition] = String(partition);
      sets = {
        metric: Object.freeze(metric),
        span: Object.freeze({ ...metric, [ATTR.operationType]: 'process' }),
      };
      if (this.byPartition.size >= MAX_CACHED_ATTRIBUTE_SETS) this.byPartition.clear();
      this.byPartition.set(key, sets);
    }
    return sets;
  }
}

/**
 * Whether a span takes part in a trace. The API's no-op tracer (no SDK registered) gives every
 * span the invalid context; an SDK gives each a valid one, sampled or not. The comparison spares
 * the no-op case `isSpanContextValid`'s two regular expressions.
 */
function traced(spanContext: SpanContext): boolean {
  return spanContext.traceId !== INVALID_TRACEID && isSpanContextValid(spanContext);
}

/** Identifies a message among those in process, per group. */
function settleKey(
  group: string | undefined,
  topic: string,
  partition: number | undefined,
  id: string,
): string {
  return `${group ?? ''}\u0000${topic}\u0000${partition ?? ''}\u0000${id}`;
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

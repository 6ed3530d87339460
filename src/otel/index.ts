import { readFileSync } from 'node:fs';
import {
  type MeterProvider,
  metrics,
  type TextMapPropagator,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import type { Broker } from '../core/broker.js';
import { ConfigError } from '../core/errors.js';
import { isPlainObject, oneOf, refuseUnknownKeys } from '../core/options.js';
import { Instrumentation, type ProcessSpanParent } from './instrumentation.js';
import { TracedBroker } from './traced-broker.js';

export { ATTR, DURATION_BUCKETS, METRIC } from './conventions.js';
export type { ProcessSpanParent };

/** Options of `instrument`. Every one has a default; unknown keys are refused. */
export interface OtelOptions {
  /** Where spans go. Default: the global tracer provider (`trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider;
  /** Where metrics go. Default: the global meter provider (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
  /**
   * How trace context is written into and read from message headers. Default: the global
   * propagator (`propagation`; register W3C Trace Context to get `traceparent` and `tracestate`).
   */
  propagator?: TextMapPropagator;
  /**
   * The parent of a single message's `process` span:
   * - `'none'` (default): none; the span starts a trace of its own, linked to the message's
   *   creation context, as the conventions advise for a consumer, whose work is not a part of
   *   the sender's request. (Not the context active where the broker calls the handler: that is
   *   whatever called `connect` or `subscribe`, such as a startup span, not the message's.)
   * - `'creation'`: the message's creation context (the producer's `send` span), also linked:
   *   sender, every attempt, retries and dead letter show as one trace.
   * A batch's process span has no parent, with a link per message.
   */
  processSpanParent?: ProcessSpanParent;
  /**
   * Report `messaging.consumer.lag` (an observable gauge, `{message}`): per partition, the
   * backlog of each group an instrumented subscription reads, read with `broker.backlog` when
   * the meter collects. Default true.
   */
  lag?: boolean;
}

const SCOPE = 'mqkit';

/** mqkit's version, the instrumentation scope's: src/otel and dist/otel both sit two levels below package.json. */
function scopeVersion(): string | undefined {
  try {
    return (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }
    ).version;
  } catch {
    return undefined;
  }
}

/**
 * Traces and measures a broker by the OpenTelemetry messaging semantic conventions, through
 * `@opentelemetry/api` only (bring your own SDK, or nothing: without one the API's no-op
 * tracer and meter make this nearly free).
 *
 * Returns a broker that does what `broker` does, and:
 * - producers make `send {topic}` spans (PRODUCER; for `sendBatch` a `create` span per message
 *   and a `send` span of kind CLIENT linked to them) and put their context into the message
 *   headers; retry copies, delay tiers and dead-letter copies carry those headers unchanged, so
 *   every attempt links back to the send;
 * - handlers run inside a `process {topic}` span (CONSUMER) linked to the creation context,
 *   active while the handler runs, with the attempt number;
 * - the engine's outcomes become `settle` spans (CLIENT) under the process span: `ack`, `retry`
 *   (with the back-off and whether in process or by a copy) and `dead_letter`;
 * - metrics: `messaging.client.operation.duration`, `messaging.client.sent.messages`,
 *   `messaging.client.consumed.messages`, `messaging.process.duration` (seconds, with the
 *   conventions' buckets) and the `messaging.consumer.lag` gauge.
 *
 * Only what goes through the returned broker is traced. Closing it closes `broker`. Not traced:
 * the broker ack itself (mqkit batches acks and commits; the `ack` span marks the decision),
 * and RabbitMQ's delivery tag (channel-local; mqkit does not expose it on deliveries).
 */
export function instrument(broker: Broker, given: OtelOptions = {}): Broker {
  if (!isPlainObject(given)) throw new ConfigError('instrument.options', 'must be an options object');
  const options: OtelOptions = given;
  refuseUnknownKeys(
    options,
    ['tracerProvider', 'meterProvider', 'propagator', 'processSpanParent', 'lag'],
    'instrument.',
  );
  const tracerProvider = options.tracerProvider ?? trace.getTracerProvider();
  const meterProvider = options.meterProvider ?? metrics.getMeterProvider();
  if (!hasMethods(tracerProvider, ['getTracer']))
    throw new ConfigError(
      'instrument.tracerProvider',
      'must have getTracer (an OpenTelemetry TracerProvider)',
    );
  if (!hasMethods(meterProvider, ['getMeter']))
    throw new ConfigError('instrument.meterProvider', 'must have getMeter (an OpenTelemetry MeterProvider)');
  const propagator = options.propagator;
  if (propagator !== undefined && !hasMethods(propagator, ['inject', 'extract']))
    throw new ConfigError(
      'instrument.propagator',
      'must have inject and extract (an OpenTelemetry TextMapPropagator)',
    );
  const processSpanParent = oneOf(
    options.processSpanParent,
    'instrument.processSpanParent',
    ['none', 'creation'] as const,
    'none',
  );
  if (options.lag !== undefined && typeof options.lag !== 'boolean')
    throw new ConfigError('instrument.lag', 'must be a boolean');
  if (!hasMethods(broker, ['producer', 'subscribe', 'consume', 'on', 'backlog', 'close']))
    throw new ConfigError('instrument.broker', 'must be a Broker (what connect() resolves with)');
  if (broker instanceof TracedBroker) throw new ConfigError('instrument.broker', 'is instrumented already');
  const version = scopeVersion();
  const meter = meterProvider.getMeter(SCOPE, version);
  let traced: TracedBroker | undefined;
  const instrumentation: Instrumentation = new Instrumentation(
    broker.kind,
    tracerProvider.getTracer(SCOPE, version),
    meter,
    propagator,
    processSpanParent,
    () => traced?.listenToFailures(),
    () => traced?.listenToAcks(),
  );
  traced = new TracedBroker(broker, instrumentation, meter, options.lag ?? true);
  return traced;
}

function hasMethods(value: unknown, names: readonly string[]): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    names.every((name) => typeof (value as Record<string, unknown>)[name] === 'function')
  );
}

import type { Span } from '@opentelemetry/api';
import type { BatchMessage, Producer } from '../core/broker.js';
import type { OutgoingMessage, SendResult, TopicRef } from '../core/message.js';
import { isPlainObject } from '../core/options.js';
import { uuidv7 } from '../core/uuid.js';
import { ATTR } from './conventions.js';
import type { Instrumentation } from './instrumentation.js';

/**
 * A producer whose sends are traced: a `send` span (PRODUCER) per `send` and `sendOneWay`, and
 * for a `sendBatch` a `create` span (PRODUCER) per message plus one `send` span (CLIENT) linked
 * to them. Each message leaves with its span's context in its headers (`traceparent`,
 * `tracestate` with the W3C propagator), on a copy: the caller's message is not changed. With
 * the API's no-op tracer (no SDK) messages go as given.
 *
 * A traced message without an id gets its UUIDv7 here rather than in the producer (the same
 * default) where its span ends before the send. A malformed message is passed on untouched for
 * the producer to refuse.
 */
export class TracedProducer implements Producer {
  constructor(
    private readonly inner: Producer,
    private readonly instrumentation: Instrumentation,
  ) {}

  async send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    if (!wellFormed(message)) return this.inner.send(message);
    const topic = topicNameOf(message.topic);
    const startedAt = performance.now();
    const { span, headers } = this.instrumentation.startSend('send', topic, message);
    try {
      const result = await this.inner.send(headers === message.headers ? message : { ...message, headers });
      this.instrumentation.endSend(span, startedAt, topic, 1, undefined, result);
      return result;
    } catch (error) {
      this.instrumentation.endSend(span, startedAt, topic, 1, error);
      throw error;
    }
  }

  async sendBatch<T extends readonly unknown[]>(
    messages: { readonly [K in keyof T]: BatchMessage<T[K]> },
  ): Promise<SendResult[]> {
    const list = messages as readonly BatchMessage<unknown>[];
    if (!Array.isArray(list) || list.length === 0 || !list.every(wellFormed))
      return this.inner.sendBatch(messages);
    const startedAt = performance.now();
    const creations: Span[] = [];
    const topics = new Set<string>();
    let traced: BatchMessage<unknown>[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const message = list[i] as BatchMessage<unknown>;
      const topic = topicNameOf(message.topic);
      topics.add(topic);
      const { span, headers, recording } = this.instrumentation.startSend('create', topic, message);
      // The id the producer would give, given here so that the create span, ended before the send, names it.
      const id = message.id ?? (recording ? uuidv7() : undefined);
      if (recording && message.id === undefined) span.setAttribute(ATTR.messageId, id as string);
      span.end();
      creations.push(span);
      // A no-op create span (no SDK) leaves its message as given, and the batch while all are.
      if (!recording && headers === message.headers) traced?.push(message);
      else (traced ??= list.slice(0, i)).push({ ...message, id, headers });
    }
    const destination = topics.size === 1 ? (topics.values().next().value as string) : undefined;
    const span = this.instrumentation.startBatchSend(destination, creations);
    try {
      const results = await this.inner.sendBatch((traced ?? list) as unknown as typeof messages);
      this.instrumentation.endSend(span, startedAt, destination, list.length, undefined);
      return results;
    } catch (error) {
      this.instrumentation.endSend(span, startedAt, destination, list.length, error);
      throw error;
    }
  }

  /** The span ends once the message is handed over: a one-way send has no acknowledgement to wait for. */
  sendOneWay<T>(message: OutgoingMessage<T>): void {
    if (!wellFormed(message)) {
      this.inner.sendOneWay(message);
      return;
    }
    const topic = topicNameOf(message.topic);
    const startedAt = performance.now();
    const { span, headers, recording } = this.instrumentation.startSend('send', topic, message);
    const id = message.id ?? (recording ? uuidv7() : undefined);
    if (recording && message.id === undefined) span.setAttribute(ATTR.messageId, id as string);
    try {
      this.inner.sendOneWay(headers === message.headers ? message : { ...message, id, headers });
      this.instrumentation.endSend(span, startedAt, topic, 1, undefined);
    } catch (error) {
      this.instrumentation.endSend(span, startedAt, topic, 1, error);
      throw error;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Whether the message has the shape tracing needs; the producer refuses anything else itself. */
function wellFormed(message: unknown): message is OutgoingMessage<unknown> {
  if (!isPlainObject(message)) return false;
  const { topic, headers, id } = message;
  if (typeof topic !== 'string' && !(isPlainObject(topic) && typeof topic.name === 'string')) return false;
  return (headers === undefined || isPlainObject(headers)) && (id === undefined || typeof id === 'string');
}

function topicNameOf(topic: TopicRef<unknown>): string {
  return typeof topic === 'string' ? topic : topic.name;
}

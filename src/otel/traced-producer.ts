import type { Span } from '@opentelemetry/api';
import type { BatchMessage, Producer } from '../core/broker.js';
import type { OutgoingMessage, SendResult, TopicRef } from '../core/message.js';
import { isPlainObject } from '../core/options.js';
import { uuidv7 } from '../core/uuid.js';
import { ATTR } from './conventions.js';
import type { Instrumentation, SendSpan } from './instrumentation.js';
import { quietly } from './quietly.js';

/**
 * A producer whose sends are traced: a `send` span (PRODUCER) per `send` and `sendOneWay`, and
 * for a `sendBatch` a `create` span (PRODUCER) per message plus one `send` span (CLIENT) linked
 * to them. Each message leaves with its span's context in its headers (`traceparent`,
 * `tracestate` with the W3C propagator), on a copy: the caller's message is not changed. With
 * the API's no-op tracer (no SDK) messages go as given.
 *
 * A traced message without an id gets its UUIDv7 here rather than in the producer (the same
 * default) where its span ends before the send. A malformed message is passed on untouched for
 * the producer to refuse. Tracing never changes a send's outcome: an error of the
 * instrumentation itself sends the message untraced, or is dropped once it was sent.
 *
 * `sendOneWay`: its span ends when the message is handed over and counts as sent (a one-way
 * send reports failures later, to `onError` only), and `onError` gets the traced copy of the
 * message (with its id and `traceparent`), not the caller's object.
 */
export class TracedProducer implements Producer {
  constructor(
    private readonly inner: Producer,
    private readonly instrumentation: Instrumentation,
  ) {}

  async send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    if (this.instrumentation.idle() || !wellFormed(message)) return this.inner.send(message);
    const topic = topicNameOf(message.topic);
    const startedAt = performance.now();
    const started = quietly(() => this.instrumentation.startSend('send', topic, message));
    if (started === undefined) return this.inner.send(message);
    const { span, headers } = started;
    let result: SendResult;
    try {
      result = await this.inner.send(headers === message.headers ? message : { ...message, headers });
    } catch (error) {
      quietly(() => this.instrumentation.endSend(span, startedAt, topic, 1, error));
      throw error;
    }
    quietly(() => this.instrumentation.endSend(span, startedAt, topic, 1, undefined, result));
    return result;
  }

  async sendBatch<T extends readonly unknown[]>(
    messages: { readonly [K in keyof T]: BatchMessage<T[K]> },
  ): Promise<SendResult[]> {
    const list = messages as readonly BatchMessage<unknown>[];
    if (this.instrumentation.idle() || !Array.isArray(list) || list.length === 0 || !list.every(wellFormed))
      return this.inner.sendBatch(messages);
    const startedAt = performance.now();
    const traced = quietly(() => this.startBatch(list));
    if (traced === undefined) return this.inner.sendBatch(messages);
    const { span, destination, batch } = traced;
    let results: SendResult[];
    try {
      results = await this.inner.sendBatch(batch as unknown as typeof messages);
    } catch (error) {
      quietly(() => this.instrumentation.endSend(span, startedAt, destination, list.length, error));
      throw error;
    }
    quietly(() => this.instrumentation.endSend(span, startedAt, destination, list.length, undefined));
    return results;
  }

  sendOneWay<T>(message: OutgoingMessage<T>): void {
    if (this.instrumentation.idle() || !wellFormed(message)) {
      this.inner.sendOneWay(message);
      return;
    }
    const topic = topicNameOf(message.topic);
    const startedAt = performance.now();
    const started = quietly(() => this.instrumentation.startSend('send', topic, message));
    if (started === undefined) {
      this.inner.sendOneWay(message);
      return;
    }
    const { span, headers } = started;
    const id = quietly(() => idFor(started, message)) ?? message.id;
    try {
      this.inner.sendOneWay(headers === message.headers ? message : { ...message, id, headers });
    } catch (error) {
      quietly(() => this.instrumentation.endSend(span, startedAt, topic, 1, error));
      throw error;
    }
    quietly(() => this.instrumentation.endSend(span, startedAt, topic, 1, undefined));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** The create spans of a batch (ended at once) and its send span, with the batch to send: the caller's while nothing is traced. */
  private startBatch(list: readonly BatchMessage<unknown>[]): {
    span: Span;
    destination: string | undefined;
    batch: readonly BatchMessage<unknown>[];
  } {
    const creations: Span[] = [];
    const topics = new Set<string>();
    let traced: BatchMessage<unknown>[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const message = list[i] as BatchMessage<unknown>;
      const topic = topicNameOf(message.topic);
      topics.add(topic);
      const started = this.instrumentation.startSend('create', topic, message);
      const id = idFor(started, message);
      const { span, headers } = started;
      span.end();
      creations.push(span);
      // A no-op create span (no SDK) leaves its message as given, and the batch while all are.
      if (headers === message.headers) {
        traced?.push(message);
      } else {
        traced ??= list.slice(0, i);
        traced.push({ ...message, id, headers });
      }
    }
    const destination = topics.size === 1 ? (topics.values().next().value as string) : undefined;
    return {
      span: this.instrumentation.startBatchSend(destination, creations),
      destination,
      batch: traced ?? list,
    };
  }
}

/** The id a recording span's message is sent with: its own, or the producer's default made here and named on the span. */
function idFor(started: SendSpan, message: { id?: string | undefined }): string | undefined {
  if (message.id !== undefined || !started.recording) return message.id;
  const id = uuidv7();
  started.span.setAttribute(ATTR.messageId, id);
  return id;
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

import type { Span } from '@opentelemetry/api';
import type { BatchMessage, Producer } from '../core/broker.js';
import type { OutgoingMessage, SendResult, TopicRef } from '../core/message.js';
import { isPlainObject } from '../core/options.js';
import { uuidv7 } from '../core/uuid.js';
import type { Instrumentation } from './instrumentation.js';

/**
 * A producer whose sends are traced: a `send` span (PRODUCER) per `send` and `sendOneWay`, and
 * for a `sendBatch` a `create` span (PRODUCER) per message plus one `send` span (CLIENT) linked
 * to them. Each message leaves with its span's context in its headers (`traceparent`,
 * `tracestate` with the W3C propagator), on a copy: the caller's message is not changed.
 *
 * A message without an id gets its UUIDv7 here rather than in the producer (the same default),
 * so that its spans carry `messaging.message.id`. A malformed message is passed on untouched for
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
    const id = message.id ?? uuidv7();
    const startedAt = performance.now();
    const { span, headers } = this.instrumentation.startSend('send', topic, { ...message, id });
    try {
      const result = await this.inner.send({ ...message, id, headers });
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
    const traced = list.map((message) => {
      const topic = topicNameOf(message.topic);
      topics.add(topic);
      const id = message.id ?? uuidv7();
      const { span, headers } = this.instrumentation.startSend('create', topic, { ...message, id });
      span.end();
      creations.push(span);
      return { ...message, id, headers };
    });
    const destination = topics.size === 1 ? (topics.values().next().value as string) : undefined;
    const span = this.instrumentation.startBatchSend(destination, creations);
    try {
      const results = await this.inner.sendBatch(traced as unknown as typeof messages);
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
    const id = message.id ?? uuidv7();
    const startedAt = performance.now();
    const { span, headers } = this.instrumentation.startSend('send', topic, { ...message, id });
    try {
      this.inner.sendOneWay({ ...message, id, headers });
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

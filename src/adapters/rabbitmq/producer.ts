import type { Producer } from '../../core/broker.js';
import { ClosedError, ConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { OutgoingMessage, SendResult } from '../../core/message.js';
import { oneWayReporter } from '../../core/one-way.js';
import type { ResolvedProducerOptions } from '../../core/options.js';
import type { PublishEvents } from '../../core/publish-events.js';
import { encodeMessage, H, type WireMessage } from '../../core/wire.js';
import { checkAmqpLimits, publishOptions, routingKey } from './amqp-wire.js';
import type { RabbitConnection } from './connection.js';
import { delayTiers, hopHeaders } from './delay-route.js';
import { names } from './names.js';
import { Publisher } from './publisher.js';
import type { Topology } from './topology.js';

/**
 * A producer on its own channel: a confirm channel for acks 'all' (persistent messages) and
 * 'leader' (transient messages: confirmed once enqueued, not once on disk), a plain channel
 * for 'none'. Messages are published `mandatory`, so a message no queue takes is reported as
 * an unroutable `PublishError` instead of vanishing. Delayed messages travel through the
 * delay tiers (see index.ts) and resolve once the first tier took them.
 */
export class RabbitMqProducer implements Producer {
  private readonly publisher: Publisher;
  private closed = false;
  private readonly reportOneWay: (error: unknown, message: OutgoingMessage<unknown>) => void;

  constructor(
    private readonly connection: RabbitConnection,
    private readonly topology: Topology,
    private readonly options: ResolvedProducerOptions,
    private readonly maxBytes: number,
    logger: Logger,
    private readonly published: PublishEvents,
    private readonly onClose: (p: RabbitMqProducer) => void,
  ) {
    this.reportOneWay = oneWayReporter(options.onError, logger);
    this.publisher = new Publisher(connection, {
      confirm: options.acks !== 'none',
      timeoutMs: options.timeoutMs,
      onChannelError: () => topology.forget(),
    });
  }

  send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    try {
      if (this.closed) throw new ClosedError('producer is closed');
      const wire = encodeMessage(message as OutgoingMessage<unknown>, this.maxBytes);
      const send = this.prepare(wire);
      return this.published.observe(wire, send());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async sendBatch(messages: readonly OutgoingMessage<unknown>[]): Promise<SendResult[]> {
    if (!Array.isArray(messages)) throw new ConfigError('sendBatch.messages', 'must be an array');
    if (this.closed) throw new ClosedError('producer is closed');
    // All valid before any is sent.
    const wires = messages.map((m) => encodeMessage(m, this.maxBytes));
    const sends = wires.map((wire) => this.prepare(wire));
    // Each message is confirmed (or fails) on its own.
    return Promise.all(sends.map((send, i) => this.published.observe(wires[i] as WireMessage, send())));
  }

  sendOneWay<T>(message: OutgoingMessage<T>): void {
    this.send(message).catch((error: unknown) =>
      this.reportOneWay(error, message as OutgoingMessage<unknown>),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.publisher.close();
    this.onClose(this);
  }

  /**
   * Builds the publish of one message and checks it against AMQP's limits (a non-retriable
   * `PublishError` naming the limit, thrown before anything is queued); the returned function
   * sends it.
   */
  private prepare(wire: WireMessage): () => Promise<SendResult> {
    const result: SendResult = { id: wire.id, topic: wire.topic };
    const content = toBuffer(wire.payload);
    const key = routingKey(wire.tag);
    const exchange = names.topicExchange(wire.topic);
    const persistent = this.options.acks === 'all';
    const mandatory = this.options.acks !== 'none';
    if (wire.delayMs > 0) {
      const tiers = delayTiers(wire.delayMs);
      const now = Date.now();
      const options = publishOptions(wire.headers, wire.key, {
        persistent,
        mandatory,
        extra: {
          ...hopHeaders(tiers, { kind: 'topic', exchange }),
          [H.timestamp]: String(now),
          [H.targetTopic]: wire.topic,
          [H.deliverAt]: String(now + wire.delayMs),
        },
      });
      const first = names.delayTier(tiers[0] as number);
      checkAmqpLimits(first, key, options, this.connection.frameMax);
      return async () => {
        await this.topology.topic(wire.topic);
        await this.topology.delayRoute(tiers, { kind: 'topic', exchange });
        await this.publisher.publish(first, key, content, options);
        return result;
      };
    }
    const options = publishOptions(wire.headers, wire.key, {
      persistent,
      mandatory,
      // Stream offsets by time have second precision; readers use this to start at the exact ms.
      extra: this.topology.isStream(wire.topic) ? { [H.timestamp]: String(Date.now()) } : undefined,
    });
    checkAmqpLimits(exchange, key, options, this.connection.frameMax);
    return () => {
      if (this.topology.topicReady(wire.topic)) {
        return this.publisher.publish(exchange, key, content, options).then(() => result);
      }
      return this.topology
        .topic(wire.topic)
        .then(() => this.publisher.publish(exchange, key, content, options))
        .then(() => result);
    };
  }
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

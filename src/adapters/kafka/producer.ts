import type { Producer } from '../../core/broker.js';
import { ClosedError, ConfigError, TimeoutError } from '../../core/errors.js';
import type { OutgoingMessage, SendResult } from '../../core/message.js';
import { oneWayReporter } from '../../core/one-way.js';
import type { ResolvedProducerOptions } from '../../core/options.js';
import type { PublishEvents } from '../../core/publish-events.js';
import { withinTime } from '../../core/timers.js';
import { encodeMessage, H, type WireMessage } from '../../core/wire.js';
import type { KafkaAcks, OutgoingRecord, RecordPosition } from './client.js';
import { delayedRecord, type KafkaContext } from './context.js';
import { SendQueue } from './send-queue.js';

/** Largest body accepted: topics created by this adapter allow 2 MiB records, leaving room for headers. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

const ACKS: Record<ResolvedProducerOptions['acks'], KafkaAcks> = { all: -1, leader: 1, none: 0 };

/**
 * A producer on a Kafka connection. Records are plain Kafka records: key = message key,
 * value = encoded body, headers = mqkit's wire headers plus the application's.
 *
 * Sends made at the same time, or while this producer's previous request is in flight, share
 * one produce request (see `kafka.producer.lingerMs` and `batchSize`); a `sendBatch` is never
 * split across requests. Neither `send` nor `sendBatch` is atomic. A delayed message
 * (`delayMs`) is written to a delay-tier topic and resolves once stored there.
 */
export class KafkaProducer implements Producer {
  private readonly queue: SendQueue;
  private readonly oneWay: SendQueue;
  private readonly reportOneWay: (error: unknown, message: OutgoingMessage<unknown>) => void;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly context: KafkaContext,
    private readonly options: ResolvedProducerOptions,
    private readonly published: PublishEvents,
    private readonly onClose: (producer: KafkaProducer) => void,
  ) {
    this.reportOneWay = oneWayReporter(options.onError, context.logger);
    const { lingerMs, batchSize, compression } = context.options.producer;
    const acks = ACKS[options.acks];
    const client = context.producerClient(options.idempotent);
    this.queue = new SendQueue(
      (records) => client.send(records, { acks, compression, timeoutMs: options.timeoutMs }),
      {
        lingerMs,
        batchSize,
        maxInFlight: options.idempotent ? 1 : 5,
      },
    );
    const plain = context.producerClient(false);
    this.oneWay = new SendQueue(
      (records) => plain.send(records, { acks: 0, compression, timeoutMs: options.timeoutMs }),
      { lingerMs, batchSize, maxInFlight: 5 },
    );
  }

  async send<T>(message: OutgoingMessage<T>): Promise<SendResult> {
    this.assertOpen();
    const wire = encodeMessage(message as OutgoingMessage<unknown>, MAX_MESSAGE_BYTES);
    try {
      const sent = await this.bounded(wire.topic, async () => {
        if (wire.delayMs > 0) await this.context.prepareDelays();
        return result(wire, await this.queue.push(this.record(wire)));
      });
      this.published.confirmed(sent);
      return sent;
    } catch (error) {
      this.published.failed(wire, error);
      throw error;
    }
  }

  async sendBatch(messages: readonly OutgoingMessage<unknown>[]): Promise<SendResult[]> {
    this.assertOpen();
    if (!Array.isArray(messages)) throw new ConfigError('sendBatch.messages', 'must be an array');
    const wires = messages.map((m) => encodeMessage(m, MAX_MESSAGE_BYTES)); // all valid before any is sent
    if (wires.length === 0) return [];
    try {
      const sent = await this.bounded([...new Set(wires.map((w) => w.topic))].join(', '), async () => {
        if (wires.some((w) => w.delayMs > 0)) await this.context.prepareDelays();
        const positions = await this.queue.pushGroup(wires.map((w) => this.record(w)));
        return wires.map((w, i) => result(w, positions[i] as RecordPosition));
      });
      this.published.confirmedAll(sent);
      return sent;
    } catch (error) {
      // The batch rejects as a whole, so each message is reported failed, though (not atomic)
      // some partitions may have stored theirs.
      this.published.failedAll(wires, error);
      throw error;
    }
  }

  sendOneWay<T>(message: OutgoingMessage<T>): void {
    const fail = (error: unknown) => this.reportOneWay(error, message as OutgoingMessage<unknown>);
    try {
      this.assertOpen();
      const wire = encodeMessage(message as OutgoingMessage<unknown>, MAX_MESSAGE_BYTES);
      const sent = this.bounded(wire.topic, async () => {
        if (wire.delayMs > 0) await this.context.prepareDelays();
        return this.oneWay.push(this.record(wire));
      });
      sent.then(
        (position) => {
          // Written with acks 0: a partition, no offset.
          if (this.published.observed) this.published.confirmed(result(wire, position));
        },
        (error: unknown) => {
          this.published.failed(wire, error);
          fail(error);
        },
      );
    } catch (error) {
      fail(error);
    }
  }

  /** Waits for sends in flight; a second caller waits for the same. */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= Promise.all([this.queue.drained(), this.oneWay.drained()]).then(() =>
      this.onClose(this),
    );
    return this.closing;
  }

  /**
   * Runs a send, creating the delay-tier topics first if needed, within the producer's
   * `timeoutMs`: past it, a retriable `TimeoutError` (the records may still be stored later).
   */
  private bounded<R>(topics: string, send: () => Promise<R>): Promise<R> {
    return withinTime(
      send(),
      this.options.timeoutMs,
      () =>
        new TimeoutError(
          `send to ${topics}: not done within ${this.options.timeoutMs} ms; the records may still be stored`,
        ),
    );
  }

  /** The record to write: to the topic itself, or (delayed) to the first delay tier. */
  private record(wire: WireMessage): OutgoingRecord {
    const record = { topic: wire.topic, key: wire.key, value: wire.payload, headers: wire.headers };
    if (wire.delayMs === 0) return record;
    const now = Date.now();
    return delayedRecord(this.context, record, wire.topic, now + wire.delayMs, {
      [H.timestamp]: String(now),
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('producer is closed');
  }
}

function result(wire: WireMessage, position: RecordPosition): SendResult {
  if (wire.delayMs > 0) return { id: wire.id, topic: wire.topic };
  return position.offset === undefined
    ? { id: wire.id, topic: wire.topic, partition: position.partition }
    : { id: wire.id, topic: wire.topic, partition: position.partition, offset: String(position.offset) };
}

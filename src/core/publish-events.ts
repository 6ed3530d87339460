import type { EventHub } from './events.js';
import type { SendResult } from './message.js';

/** What a publish event names of its message: where it went and its id. */
export interface PublishedMessage {
  readonly topic: string;
  readonly id: string;
}

/**
 * A producer's `publish-confirmed` and `publish-failed` events (see `MqEvents`): one per
 * message that passed the producer's checks, whichever call sent it. No payload is built
 * while nobody listens.
 */
export class PublishEvents {
  constructor(
    private readonly events: EventHub,
    private readonly broker: string,
  ) {}

  /** Whether anyone listens to either event: callers may skip their bookkeeping otherwise. */
  get observed(): boolean {
    return this.events.has('publish-confirmed') || this.events.has('publish-failed');
  }

  confirmed(result: SendResult): void {
    if (!this.events.has('publish-confirmed')) return;
    this.emitConfirmed(result);
  }

  confirmedAll(results: readonly SendResult[]): void {
    if (!this.events.has('publish-confirmed')) return;
    for (const result of results) this.emitConfirmed(result);
  }

  failed(message: PublishedMessage, error: unknown): void {
    if (!this.events.has('publish-failed')) return;
    this.emitFailed(message, error);
  }

  failedAll(messages: readonly PublishedMessage[], error: unknown): void {
    if (!this.events.has('publish-failed')) return;
    for (const message of messages) this.emitFailed(message, error);
  }

  /** `sent`, after which the event of its message is emitted (`sent` itself when nobody listens). */
  observe(message: PublishedMessage, sent: Promise<SendResult>): Promise<SendResult> {
    if (!this.observed) return sent;
    return sent.then(
      (result) => {
        this.confirmed(result);
        return result;
      },
      (error: unknown) => {
        this.failed(message, error);
        throw error;
      },
    );
  }

  private emitConfirmed(result: SendResult): void {
    this.events.emit('publish-confirmed', {
      broker: this.broker,
      topic: result.topic,
      id: result.id,
      partition: result.partition,
      offset: result.offset,
    });
  }

  private emitFailed(message: PublishedMessage, error: unknown): void {
    this.events.emit('publish-failed', { broker: this.broker, topic: message.topic, id: message.id, error });
  }
}

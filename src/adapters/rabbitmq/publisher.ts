import type { Channel, ConfirmChannel, Message, Options } from 'amqplib';
import { IllegalOperationError } from 'amqplib';
import { ClosedError, type MqError, PublishError, TimeoutError } from '../../core/errors.js';
import type { RabbitConnection } from './connection.js';

interface Pending {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly options: Options.Publish;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (error: MqError) => void;
  /** Written to a channel at least once: after a loss its fate is unknown. */
  published: boolean;
  /** The broker returned it as unroutable (mandatory); its confirm follows. */
  returned: boolean;
  settled: boolean;
}

/**
 * Publishes on one channel with many messages in flight. With confirms, each publish resolves
 * on the broker's ack (acks can be `multiple`), rejects on a nack or an unroutable return;
 * without, it resolves once written.
 *
 * Order: publishes go out in call order, also across a reconnect: messages not confirmed when
 * the connection dropped are published again first, in their order (the broker may then hold
 * two copies; consumers de-duplicate by id). Nothing is reported sent unless confirmed.
 *
 * Back-pressure: while the channel's write buffer is full (until `drain`) or the broker blocked
 * the connection (resource alarm), publishes wait here instead of piling into the socket, each
 * bounded by `timeoutMs`.
 */
export class Publisher {
  private channel: Channel | ConfirmChannel | undefined;
  private opening: Promise<void> | undefined;
  private waiting: Pending[] = [];
  private waitingHead = 0;
  /** Published, not yet confirmed, by delivery tag (insertion order is tag order). */
  private readonly unconfirmed = new Map<number, Pending>();
  private nextTag = 1;
  private writable = true;
  private channelError: Error | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  private idle: (() => void) | undefined;
  private readonly onUnblocked = (): void => this.flush();

  private readonly confirm: boolean;
  private readonly timeoutMs: number;
  private readonly onChannelError: () => void;

  constructor(
    private readonly connection: RabbitConnection,
    options: {
      /** Publisher confirms: a publish settles when the broker confirmed it (false: when written). */
      confirm: boolean;
      /** Longest wait for a confirm (or for the connection to be writable again). */
      timeoutMs: number;
      /** Told when the broker closed the channel (e.g. a missing exchange), so topology is declared again. */
      onChannelError: () => void;
    },
  ) {
    this.confirm = options.confirm;
    this.timeoutMs = options.timeoutMs;
    this.onChannelError = options.onChannelError;
    connection.on('unblocked', this.onUnblocked);
  }

  /** Publishes; see the class comment for when it settles. */
  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('producer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({
        exchange,
        routingKey,
        content,
        options,
        deadline: Date.now() + this.timeoutMs,
        resolve,
        reject,
        published: false,
        returned: false,
        settled: false,
      });
      this.flush();
      this.sweeper ??= setInterval(this.sweep, Math.min(1000, Math.max(10, this.timeoutMs / 10)));
    });
  }

  /** Stops taking publishes, waits for those in flight (bounded by their timeout), closes the channel. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pendingCount() > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    this.connection.off('unblocked', this.onUnblocked);
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => {});
  }

  private pendingCount(): number {
    return this.waiting.length - this.waitingHead + this.unconfirmed.size;
  }

  private flush(): void {
    const channel = this.channel;
    if (channel === undefined) {
      if (this.waiting.length > this.waitingHead) this.open();
      return;
    }
    let refused = false;
    while (this.waitingHead < this.waiting.length && this.writable && !this.connection.blocked) {
      const p = this.waiting[this.waitingHead] as Pending;
      if (p.settled) {
        this.waitingHead++;
        continue;
      }
      let ok: boolean;
      try {
        ok = channel.publish(p.exchange, p.routingKey, p.content, p.options);
      } catch (error) {
        if (error instanceof IllegalOperationError) return; // the channel is closing; its close handler republishes
        // amqplib's encoder refused this message (a field over its AMQP limit) before writing a
        // byte: the channel is fine and the message can never be sent. Left at the head of the
        // queue it would hold up every later publish until each timed out.
        this.waitingHead++;
        p.settled = true;
        p.reject(
          new PublishError(
            `RabbitMQ cannot carry this message: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error, retriable: false },
          ),
        );
        refused = true;
        continue;
      }
      this.waitingHead++;
      p.published = true;
      if (this.confirm) this.unconfirmed.set(this.nextTag++, p);
      else this.settle(p, undefined);
      if (!ok) this.writable = false;
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
    if (refused) this.checkIdle();
  }

  private open(): void {
    if (this.opening !== undefined || this.connection.isClosed) return;
    this.opening = (async () => {
      try {
        const channel = this.confirm
          ? await this.connection.confirmChannel()
          : await this.connection.channel();
        channel.on('ack', this.onAck);
        channel.on('nack', this.onNack);
        channel.on('return', this.onReturn);
        channel.on('drain', () => {
          this.writable = true;
          this.flush();
        });
        channel.on('error', (error: Error) => {
          this.channelError = error;
        });
        channel.on('close', () => this.onClose(channel));
        this.channel = channel;
        this.nextTag = 1;
        this.writable = true;
        this.channelError = undefined;
      } catch (error) {
        if (this.connection.isClosed) {
          this.failWaiting(new ClosedError('RabbitMQ connection is closed', { cause: error }));
        } else {
          // The connection dropped under us: try again once it is back (or soon); waiting
          // publishes stay queued, each bounded by its deadline.
          await this.connection.settled(100);
        }
      } finally {
        this.opening = undefined;
      }
      this.flush();
    })();
  }

  private readonly onAck = (fields: { deliveryTag: number; multiple: boolean }): void => {
    this.confirmed(fields.deliveryTag, fields.multiple, false);
  };

  private readonly onNack = (fields: { deliveryTag: number; multiple: boolean }): void => {
    this.confirmed(fields.deliveryTag, fields.multiple, true);
  };

  private confirmed(tag: number, multiple: boolean, nacked: boolean): void {
    if (multiple) {
      for (const [t, p] of this.unconfirmed) {
        if (t > tag) break;
        this.unconfirmed.delete(t);
        this.settle(p, nacked ? nackError() : undefined);
      }
    } else {
      const p = this.unconfirmed.get(tag);
      if (p === undefined) return;
      this.unconfirmed.delete(tag);
      this.settle(p, nacked ? nackError() : undefined);
    }
    this.checkIdle();
  }

  /** A return precedes the message's confirm; mark the oldest unconfirmed message it matches. */
  private readonly onReturn = (message: Message): void => {
    const { exchange, routingKey } = message.fields;
    const id = message.properties.messageId;
    for (const p of this.unconfirmed.values()) {
      if (
        !p.returned &&
        p.exchange === exchange &&
        p.routingKey === routingKey &&
        p.options.messageId === id
      ) {
        p.returned = true;
        return;
      }
    }
  };

  private settle(p: Pending, error: MqError | undefined): void {
    if (p.settled) return;
    p.settled = true;
    if (p.returned) {
      p.reject(
        new PublishError(
          `unroutable: no queue is bound to exchange '${p.exchange}' for routing key '${p.routingKey}' (no group has subscribed to this topic and tag yet), so RabbitMQ dropped the message`,
          { retriable: false },
        ),
      );
    } else if (error !== undefined) p.reject(error);
    else p.resolve();
  }

  private onClose(channel: Channel): void {
    if (this.channel !== channel) return;
    this.channel = undefined;
    const lost = [...this.unconfirmed.values()].filter((p) => !p.settled);
    this.unconfirmed.clear();
    const error = this.channelError;
    if (error !== undefined) {
      // The broker closed the channel over one of these messages (e.g. its exchange was deleted):
      // publishing them again would fail the same way.
      this.onChannelError();
      for (const p of lost) {
        p.settled = true;
        p.reject(
          new PublishError(`not confirmed: RabbitMQ closed the channel (${error.message})`, {
            cause: error,
            retriable: true,
          }),
        );
      }
    } else {
      this.waiting = [...lost, ...this.waiting.slice(this.waitingHead)];
      this.waitingHead = 0;
    }
    this.checkIdle();
    if (!this.closed || this.pendingCount() > 0) this.flush();
  }

  private readonly sweep = (): void => {
    const now = Date.now();
    for (let i = this.waitingHead; i < this.waiting.length; i++) {
      const p = this.waiting[i] as Pending;
      if (p.settled || p.deadline > now) continue;
      p.settled = true;
      p.reject(
        new TimeoutError(
          p.published
            ? `not confirmed within ${this.timeoutMs} ms: the connection to RabbitMQ was lost after it was sent, so it may or may not be stored`
            : `not sent within ${this.timeoutMs} ms: ${this.connection.blocked ? 'RabbitMQ blocked the connection (memory or disk alarm)' : 'no connection to RabbitMQ'}`,
        ),
      );
    }
    for (const p of this.unconfirmed.values()) {
      if (p.deadline > now) break; // in publish order, so deadlines only grow
      if (p.settled) continue;
      p.settled = true;
      p.reject(new TimeoutError(`RabbitMQ did not confirm the message within ${this.timeoutMs} ms`));
    }
    this.compact();
    this.checkIdle();
  };

  /** Drops settled entries (timed out) so `pendingCount` and idleness reflect live ones only. */
  private compact(): void {
    if (this.waiting.length > this.waitingHead && this.waiting.some((p) => p.settled)) {
      this.waiting = this.waiting.slice(this.waitingHead).filter((p) => !p.settled);
      this.waitingHead = 0;
    }
    if (this.closed) {
      for (const [tag, p] of this.unconfirmed) if (p.settled) this.unconfirmed.delete(tag);
    }
  }

  private failWaiting(error: MqError): void {
    for (let i = this.waitingHead; i < this.waiting.length; i++) {
      const p = this.waiting[i] as Pending;
      if (!p.settled) {
        p.settled = true;
        p.reject(error);
      }
    }
    this.waiting = [];
    this.waitingHead = 0;
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.pendingCount() > 0) return;
    if (this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
    const idle = this.idle;
    this.idle = undefined;
    idle?.();
  }
}

function nackError(): PublishError {
  return new PublishError('RabbitMQ refused the message (nack): an internal error or a full queue', {
    retriable: true,
  });
}

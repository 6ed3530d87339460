import { EventEmitter } from 'node:events';
import type { Channel, ChannelModel, ConfirmChannel, RecoveringChannelModel } from 'amqplib';
import { connect as amqpConnect } from 'amqplib';
import { ClosedError, ConfigError, ConnectionError, type MqError } from '../../core/errors.js';
import { redact } from '../../core/redact.js';
import type { ResolvedRabbitMqOptions } from './options.js';

/** amqplib errors carry the AMQP reply code of a channel or connection close. */
export function replyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** An amqplib error as an mqkit error: 406 (inequivalent arguments) is a config problem. */
export function toMqError(error: unknown, what: string): MqError {
  const text = error instanceof Error ? error.message : String(error);
  if (replyCode(error) === 406) {
    return new ConfigError(
      'rabbitmq.topology',
      `${what}: ${text}. It was declared earlier with other arguments (queue type, dead-letter topic, ...); delete it or use the same options`,
      { cause: error },
    );
  }
  return new ConnectionError(`${what}: ${text}`, { cause: error });
}

export interface ConnectionEvents {
  /** A new connection is up after a lost one: declare topology again, resume consumers. */
  reconnected: [];
  disconnected: [error: Error];
  blocked: [reason: string];
  unblocked: [];
}

/**
 * One AMQP connection that comes back after a broker restart or a dropped socket (amqplib's
 * recovery, with back-off). Channels do not survive a reconnect: owners listen to
 * `reconnected` and open new ones. `generation` grows on every new connection.
 */
export class RabbitConnection extends EventEmitter<ConnectionEvents> {
  generation = 0;
  connected = true;
  /** The broker stopped reading from this connection (memory or disk alarm). */
  blocked = false;
  private closed = false;
  private admin: Promise<Channel> | undefined;

  private constructor(private readonly model: RecoveringChannelModel) {
    super();
    this.setMaxListeners(0);
    model.on('connect', (_m: ChannelModel) => {
      this.generation++;
      this.connected = true;
      this.blocked = false;
      this.admin = undefined;
      this.emit('reconnected');
    });
    model.on('disconnect', (error: Error) => {
      this.connected = false;
      this.admin = undefined;
      this.emit('disconnected', error);
    });
    model.on('blocked', (reason: string) => {
      this.blocked = true;
      this.emit('blocked', reason);
    });
    model.on('unblocked', () => {
      this.blocked = false;
      this.emit('unblocked');
    });
    model.on('error', () => {}); // reported through disconnect
  }

  /**
   * Connects, failing fast with `ConnectionError` if the first attempt fails. The publishing
   * connection is named `<connectionName> (publishing)` in the broker's connection list.
   */
  static async open(
    url: URL,
    options: ResolvedRabbitMqOptions,
    role: 'consuming' | 'publishing',
  ): Promise<RabbitConnection> {
    const target = new URL(url.href);
    // Detect a dead peer in ~20 s rather than the server's suggested 60 s.
    if (!target.searchParams.has('heartbeat')) target.searchParams.set('heartbeat', '10');
    try {
      const model = await amqpConnect(target.href, {
        ...options.tls,
        clientProperties: {
          connection_name:
            role === 'publishing' ? `${options.connectionName} (publishing)` : options.connectionName,
          product: 'mqkit',
        },
        recovery: {
          initialDelay: options.reconnect.initialMs,
          maxDelay: options.reconnect.maxMs,
          initialMaxRetries: 0,
        },
      });
      return new RabbitConnection(model);
    } catch (error) {
      throw new ConnectionError(
        `cannot connect to RabbitMQ at ${redact(url.href)}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }

  /** A new channel (waits while reconnecting). Callers must handle its `close`. */
  async channel(): Promise<Channel> {
    this.assertOpen();
    const channel = await this.model.createChannel();
    channel.on('error', () => {}); // a server-side channel close also emits 'close'
    return channel;
  }

  async confirmChannel(): Promise<ConfirmChannel> {
    this.assertOpen();
    const channel = await this.model.createConfirmChannel();
    channel.on('error', () => {});
    return channel;
  }

  /**
   * Runs declarations on the shared admin channel. A failing declaration closes that channel
   * (AMQP makes it so); the next call opens a new one.
   */
  async withAdmin<T>(what: string, operation: (channel: Channel) => Promise<T>): Promise<T> {
    this.admin ??= this.newAdmin();
    const admin = this.admin;
    try {
      return await operation(await admin);
    } catch (error) {
      if (this.admin === admin) this.admin = undefined;
      if (this.closed) throw new ClosedError('RabbitMQ connection is closed', { cause: error });
      throw toMqError(error, what);
    }
  }

  private async newAdmin(): Promise<Channel> {
    const channel = await this.channel();
    const self = this.admin;
    channel.on('close', () => {
      if (this.admin === self) this.admin = undefined;
    });
    return channel;
  }

  /** Resolves on the next reconnect or after `ms`, whichever comes first. */
  settled(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('reconnected', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.once('reconnected', done);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.model.close().catch(() => {});
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('RabbitMQ connection is closed');
  }
}

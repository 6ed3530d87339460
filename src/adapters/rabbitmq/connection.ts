import { EventEmitter } from 'node:events';
import type { Channel, ChannelModel, ConfirmChannel, RecoveringChannelModel } from 'amqplib';
import { connect as amqpConnect } from 'amqplib';
import { ClosedError, ConfigError, ConnectionError, type MqError } from '../../core/errors.js';
import { type Logger, safeLog } from '../../core/logger.js';
import { thrownText } from '../../core/options.js';
import { redactUrl, safeDecode, scrubError, urlSecrets } from '../../core/redact.js';
import { oneLine, tlsFailure } from '../../core/tls.js';
import { coalesceWrites } from './coalesced-writes.js';
import type { ResolvedRabbitMqOptions } from './options.js';

/** amqplib errors carry the AMQP reply code of a channel or connection close. */
export function replyCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** An amqplib error as an mqkit error: 406 (inequivalent arguments) is a config problem. */
export function toMqError(error: unknown, what: string): MqError {
  const text = error instanceof Error ? error.message : thrownText(error);
  if (replyCode(error) === 406) {
    return new ConfigError(
      'rabbitmq.topology',
      `${what}: ${text}. It was declared earlier with other arguments (queue type, dead-letter topic, ...); delete it or use the same options`,
      { cause: error },
    );
  }
  return new ConnectionError(`${what}: ${text}`, { cause: error });
}

/*
 * amqplib's texts (lib/connection.js) for a server that closes the connection during the
 * handshake ("Handshake terminated by server: 403 (ACCESS-REFUSED) with message ...") and for
 * one that answers connection.open with a close: the method only, no reply code ("Expected
 * ConnectionOpenOk; got <ConnectionClose channel:0>"); RabbitMQ does that for an unknown
 * virtual host or one the user has no permission on (530 NOT_ALLOWED, or 403 on some versions).
 * Anchored at the start, so a socket error naming a port or host with these numbers
 * (`connect ECONNREFUSED 127.0.0.1:403`) stays a retriable network failure.
 */
const LOGIN_REFUSED = /^Handshake terminated by server: 403\b/;
const OPEN_REFUSED =
  /^(Handshake terminated by server: 530\b|Expected ConnectionOpenOk; got <ConnectionClose\b)/;

/**
 * A failed connection attempt as a `ConnectionError`. Refused credentials (403 ACCESS_REFUSED),
 * a virtual host that does not exist or is not the user's (530 NOT_ALLOWED on connection.open)
 * and TLS failures (see `tlsFailure`: an untrusted certificate, a host name mismatch, a client
 * certificate the server refused) are not retriable: trying again gives the same answer. A refused
 * port, a timeout or a dropped socket are.
 *
 * Nothing secret reaches the message or the cause: the URL is redacted, and the URL's secrets
 * (its password, or a user info without one, which may be a token) are scrubbed from the cause.
 * The user is named only when the URL has a password beside it.
 */
export function connectError(error: unknown, url: URL, timeoutMs: number): ConnectionError {
  const where = `cannot connect to RabbitMQ at ${redactUrl(url)}`;
  const cause = scrubError(error, urlSecrets(url));
  const text = cause instanceof Error ? String(cause.message) : thrownText(cause);
  const tls = tlsFailure(cause);
  const user =
    url.username === ''
      ? "user 'guest'"
      : url.password === ''
        ? 'the user'
        : `user '${safeDecode(url.username)}'`;
  if (LOGIN_REFUSED.test(text)) {
    return new ConnectionError(
      `${where}: authentication failed: RabbitMQ refused the login of ${user} (403 ACCESS_REFUSED): wrong user name or password, or the user may not log in from this host`,
      { cause, retriable: false },
    );
  }
  if (OPEN_REFUSED.test(text)) {
    const vhost = url.pathname.length > 1 ? safeDecode(url.pathname.slice(1)) : '/';
    return new ConnectionError(
      `${where}: RabbitMQ refused to open virtual host '${vhost}' (530 NOT_ALLOWED): it does not exist or ${user} has no permission on it`,
      { cause, retriable: false },
    );
  }
  if (tls !== undefined) {
    return new ConnectionError(
      `${where}: ${tls.reason} (TLS ${tls.code}: ${oneLine(text)}); see rabbitmq.tls`,
      {
        cause,
        retriable: false,
      },
    );
  }
  if (text === 'connect ETIMEDOUT') {
    return new ConnectionError(
      `${where}: no answer within ${timeoutMs} ms (rabbitmq.connectTimeoutMs) during the TCP connect or the AMQP handshake`,
      { cause },
    );
  }
  return new ConnectionError(`${where}: ${text}`, { cause });
}

/** A short description of an amqplib error for a log line: its code and message, never the URL. */
function describe(error: unknown): { code: unknown; error: string } {
  const e = error as { code?: unknown; message?: unknown } | null;
  return { code: e?.code, error: typeof e?.message === 'string' ? e.message : thrownText(error) };
}

/** amqplib's and RabbitMQ's default frame size, until a connection negotiated its own. */
const DEFAULT_FRAME_MAX = 131_072;

export interface ConnectionEvents {
  /** A new connection is up after a lost one: declare topology again, resume consumers. */
  reconnected: [];
  /** The connection dropped (not on `close()`); the error is scrubbed of the URL's secrets. */
  disconnected: [error: unknown];
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

  private constructor(
    private readonly model: RecoveringChannelModel,
    private readonly logger: Logger,
    private readonly name: string,
    private readonly secrets: readonly string[],
    private readonly frame: { max: number },
  ) {
    super();
    this.setMaxListeners(0);
    const fields = (error: unknown) => ({ connection: name, ...describe(scrubError(error, secrets)) });
    model.on('connect', (_m: ChannelModel) => {
      this.generation++;
      this.connected = true;
      this.blocked = false;
      this.admin = undefined;
      safeLog(logger, 'info', { connection: name }, 'RabbitMQ connection is back');
      this.emit('reconnected');
    });
    model.on('disconnect', (error: Error) => {
      this.connected = false;
      this.admin = undefined;
      if (this.closed) return;
      safeLog(
        logger,
        'warn',
        fields(error),
        `RabbitMQ connection lost, reconnecting: ${describe(error).error}`,
      );
      this.emit('disconnected', scrubError(error, secrets));
    });
    model.on('connect-failed', (error: Error) => {
      if (!this.closed) safeLog(logger, 'warn', fields(error), 'RabbitMQ reconnect attempt failed');
    });
    model.on('reconnect-failed', (error: Error) => {
      if (!this.closed) safeLog(logger, 'error', fields(error), 'RabbitMQ reconnecting gave up');
    });
    model.on('blocked', (reason: string) => {
      this.blocked = true;
      safeLog(logger, 'warn', { connection: name, reason }, `RabbitMQ blocked the connection: ${reason}`);
      this.emit('blocked', reason);
    });
    model.on('unblocked', () => {
      this.blocked = false;
      this.emit('unblocked');
    });
    // Followed by 'disconnect', which is logged; here only at debug.
    model.on('error', (error: Error) => safeLog(logger, 'debug', fields(error), 'amqplib connection error'));
  }

  /**
   * Connects, failing fast with `ConnectionError` if the first attempt fails (see
   * {@link connectError} for which failures are retriable) or does not finish within
   * `connectTimeoutMs`. The publishing connection is named `<connectionName> (publishing)` in
   * the broker's connection list.
   *
   * The bound: amqplib's socket `timeout` destroys a socket that stays silent that long during
   * the connect or the handshake (on reconnects too); on top of it the first attempt as a whole
   * is cut off after `connectTimeoutMs`, and a connection that opens later is closed at once.
   */
  static async open(
    url: URL,
    options: ResolvedRabbitMqOptions,
    role: 'consuming' | 'publishing',
    logger: Logger,
  ): Promise<RabbitConnection> {
    const target = new URL(url.href);
    // Detect a dead peer in ~20 s rather than the server's suggested 60 s.
    if (!target.searchParams.has('heartbeat')) target.searchParams.set('heartbeat', '10');
    const name = role === 'publishing' ? `${options.connectionName} (publishing)` : options.connectionName;
    const timeoutMs = options.connectTimeoutMs;
    const frame = { max: DEFAULT_FRAME_MAX };
    const attempt = amqpConnect(target.href, {
      ...options.tls,
      timeout: timeoutMs,
      clientProperties: { connection_name: name, product: 'mqkit' },
      recovery: {
        initialDelay: options.reconnect.initialMs,
        maxDelay: options.reconnect.maxMs,
        initialMaxRetries: 0,
        // Runs on every new connection, the first included.
        setup: async (m: ChannelModel) => {
          coalesceWrites(m);
          const negotiated = (m as { connection?: { frameMax?: unknown } }).connection?.frameMax;
          if (typeof negotiated === 'number' && negotiated > 0) frame.max = negotiated;
        },
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), timeoutMs);
    });
    try {
      const model = await Promise.race([attempt, expired]);
      if (model === 'expired') {
        attempt.then(
          (late) => late.close().catch(() => {}),
          () => {},
        );
        throw connectError(new Error('connect ETIMEDOUT'), url, timeoutMs);
      }
      return new RabbitConnection(model, logger, name, urlSecrets(url), frame);
    } catch (error) {
      if (error instanceof ConnectionError) throw error;
      throw connectError(error, url, timeoutMs);
    } finally {
      clearTimeout(timer);
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

  /**
   * Logs a failure a background loop (resume, rebalance, membership, retry copies) recovers from
   * by itself: at `warn` with the error's code, at `debug` while this connection is down or
   * closed (the loss was logged once already, and every loop fails until it is back).
   */
  report(what: string, error: unknown): void {
    const fields = { connection: this.name, ...describe(scrubError(error, this.secrets)) };
    const level = this.connected && !this.closed ? 'warn' : 'debug';
    safeLog(this.logger, level, fields, `${what} (${thrownText(fields.code ?? 'no code')}): ${fields.error}`);
  }

  /** Largest frame the broker takes on this connection (negotiated; RabbitMQ's default 128 KiB). */
  get frameMax(): number {
    return this.frame.max;
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

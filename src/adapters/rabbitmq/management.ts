import { ConfigError, ConnectionError } from '../../core/errors.js';
import { safeDecode } from '../../core/redact.js';

/**
 * The rabbitmq_management plugin's HTTP API, for what AMQP does not tell: how many deliveries
 * a queue's consumers hold unacknowledged. Its figures are samples (every 5 s by default,
 * `collect_statistics_interval`), so they lag the broker by up to that long.
 */
export class ManagementApi {
  private constructor(
    private readonly base: string,
    private readonly authorization: string,
    private readonly vhost: string,
  ) {}

  /** Credentials come from `managementUrl` if it has them, else from the AMQP URL. */
  static from(managementUrl: string, amqpUrl: URL): ManagementApi {
    let url: URL;
    try {
      url = new URL(managementUrl);
    } catch {
      throw new ConfigError(
        'rabbitmq.managementUrl',
        `must be an http(s) URL such as http://127.0.0.1:15672`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError('rabbitmq.managementUrl', `must be http:// or https:// (got ${url.protocol}//)`);
    }
    const from = url.username !== '' ? url : amqpUrl;
    const user = safeDecode(from.username || 'guest');
    const pass = safeDecode(from.password || 'guest');
    const path = amqpUrl.pathname.replace(/^\//, '');
    const base = `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, '')}/api`;
    return new ManagementApi(
      base,
      `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
      path === '' ? '/' : safeDecode(path),
    );
  }

  /** Deliveries of `queue` not yet acknowledged, as last sampled; undefined when there is no such queue. */
  async unacked(queue: string): Promise<number | undefined> {
    const path = `/queues/${encodeURIComponent(this.vhost)}/${encodeURIComponent(queue)}?columns=messages_unacknowledged`;
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        headers: { authorization: this.authorization },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      throw new ConnectionError(`RabbitMQ management API at ${this.base} did not answer: ${String(error)}`, {
        cause: error,
      });
    }
    if (response.status === 404) return undefined;
    if (!response.ok) {
      throw new ConnectionError(`RabbitMQ management API: GET ${path} answered HTTP ${response.status}`, {
        retriable: response.status >= 500,
      });
    }
    const body = (await response.json()) as { messages_unacknowledged?: number };
    return body.messages_unacknowledged ?? 0; // absent until the first sample
  }
}

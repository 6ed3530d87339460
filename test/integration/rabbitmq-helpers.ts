import { connect as amqpConnect, type ChannelModel } from 'amqplib';
import { waitFor } from '../../src/testing/wait-for.js';

/** The management API of the broker behind `amqpUrl` (same host and credentials, port 15672). */
function management(amqpUrl: string): { base: string; authorization: string } {
  const url = new URL(amqpUrl);
  const user = decodeURIComponent(url.username || 'guest');
  const pass = decodeURIComponent(url.password || 'guest');
  return {
    base: `http://${url.hostname}:15672/api`,
    authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
  };
}

/** GETs a management API path and returns the parsed JSON. */
export async function managementGet<T>(amqpUrl: string, path: string): Promise<T> {
  const { base, authorization } = management(amqpUrl);
  const response = await fetch(`${base}${path}`, { headers: { authorization } });
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

/**
 * Waits until the broker lists the connections of a broker opened with `connectionName: name`
 * (`which`: its consuming one `name`, its publishing one `name (publishing)`, or both), and
 * returns a function that closes them from the server side (as an operator's force-close or a
 * broker-side failure would).
 */
export async function serverSideCloser(
  amqpUrl: string,
  name: string,
  which: 'both' | 'consuming' | 'publishing' = 'both',
): Promise<() => Promise<void>> {
  const { base, authorization } = management(amqpUrl);
  const wanted = [
    ...(which !== 'publishing' ? [name] : []),
    ...(which !== 'consuming' ? [`${name} (publishing)`] : []),
  ];
  const found = await waitFor(
    async () => {
      const list = await managementGet<{ name: string; user_provided_name?: string }[]>(
        amqpUrl,
        '/connections?columns=name,user_provided_name',
      );
      const mine = list.filter((c) => wanted.includes(c.user_provided_name ?? ''));
      return mine.length === wanted.length ? mine : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, message: `connections ${wanted.join(', ')} not all listed` },
  );
  return async () => {
    for (const c of found) {
      const response = await fetch(`${base}/connections/${encodeURIComponent(c.name)}`, {
        method: 'DELETE',
        headers: { authorization, 'x-reason': 'mqkit test: dropped connection' },
      });
      if (!response.ok && response.status !== 404)
        throw new Error(`DELETE connection: HTTP ${response.status}`);
    }
  };
}

/** A plain amqplib connection whose errors do not crash the test process. */
export async function rawConnection(amqpUrl: string): Promise<ChannelModel> {
  const connection = await amqpConnect(amqpUrl);
  connection.on('error', () => {});
  return connection;
}

import { inspect } from 'node:util';
import { expect } from 'vitest';
import type { Logger } from '../../src/core/logger.js';
import { type Broker, type ConnectOptions, connect, isMqError, type MqError } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

/** A logger that keeps every line as text: level, message and fields. */
export function textLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const record =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push(`${level} ${message} ${inspect(fields, { depth: 10 })}`);
    };
  return {
    lines,
    logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
  };
}

/**
 * Connects, sends one message to a new topic and waits until a new group received it; closes
 * the broker. With `secret`, no log line may hold it.
 */
export async function roundTrip(url: string, options: ConnectOptions = {}, secret?: string): Promise<void> {
  const { logger, lines } = textLogger();
  const broker: Broker = await connect(url, { logger, ...options });
  try {
    const topic = uniqueName('tls');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    await broker.subscribe({ topic, group: uniqueName('g'), startFrom: 'earliest' }, got.handler());
    const n = Math.random();
    await broker.producer().send({ topic, body: { n } });
    const [delivery] = await got.waitForCount(1, 20_000);
    expect(delivery?.body).toEqual({ n });
  } finally {
    await broker.close();
  }
  if (secret !== undefined) expect(lines.join('\n')).not.toContain(secret);
}

/**
 * Connects and expects a non-retriable `ConnectionError` whose message matches `cause`, with
 * `secret` nowhere: not in the message, the cause chain (inspected whole) nor any log line.
 */
export async function refusedConnect(
  url: string,
  options: ConnectOptions,
  cause: RegExp,
  secret: string,
): Promise<MqError> {
  const { logger, lines } = textLogger();
  let error: unknown;
  try {
    const broker = await connect(url, { ...options, logger });
    await broker.close();
  } catch (e) {
    error = e;
  }
  expect(isMqError(error), `expected an MqError, got ${inspect(error)}`).toBe(true);
  const e = error as MqError;
  expect(e.code, e.message).toBe('CONNECTION');
  expect(e.retriable, e.message).toBe(false);
  expect(e.message).toMatch(cause);
  const chain: string[] = [];
  for (let c: unknown = e; c instanceof Error && chain.length < 10; c = c.cause)
    chain.push(c.message, c.stack ?? '');
  expect(chain.join('\n')).not.toContain(secret);
  expect(inspect(e, { depth: 20 })).not.toContain(secret);
  expect(lines.join('\n')).not.toContain(secret);
  return e;
}

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AdapterFactory } from '../../src/connect.js';
import type { Logger } from '../../src/core/logger.js';
import {
  type Broker,
  type ConfigError,
  connect,
  isMqError,
  type MqError,
  type OutgoingMessage,
  registerAdapter,
} from '../../src/index.js';

let n = 0;
const unique = (prefix: string): string => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++n}`;

/** The ConfigError a call throws or rejects with; anything else (a TypeError...) fails the test. */
async function configError(call: () => unknown): Promise<ConfigError> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  if (!isMqError(error, 'CONFIG')) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return error as ConfigError;
}

describe('every bad input is a ConfigError naming the field', () => {
  let broker: Broker;
  beforeEach(async () => {
    broker = await connect(`memory://${unique('bad')}`);
  });
  afterEach(async () => {
    await broker.close();
  });

  it('connect refuses null options, non-object adapter options and keys naming no adapter', async () => {
    const url = `memory://${unique('c')}`;
    expect((await configError(() => connect(url, null as never))).field).toBe('connect.options');
    expect((await configError(() => connect(url, [] as never))).field).toBe('connect.options');
    for (const key of ['memroy', 'rabbit', 'Memory', 'amqp']) {
      const error = await configError(() => connect(url, { [key]: {} }));
      expect(error.field).toBe(key);
      expect(error.message).toContain('memory, kafka, rabbitmq');
    }
    expect((await configError(() => connect(url, { memory: null as never }))).field).toBe('memory');
    expect((await configError(() => connect(url, { memory: [] as never }))).field).toBe('memory');
    // Options of another built-in adapter are not an error: one config object can serve all URLs.
    const ok = await connect(url, { kafka: {}, rabbitmq: {} });
    await ok.close();
  });

  it("accepts a registered adapter's options under its scheme name", async () => {
    const got: unknown[] = [];
    const factory: AdapterFactory = async (_url, options) => {
      got.push(options);
      return broker;
    };
    const scheme = `x${Date.now().toString(36)}`;
    registerAdapter(`${scheme}:`, factory);
    await connect(`${scheme}://h`, { [scheme]: { a: 1 } });
    expect(got).toEqual([{ a: 1 }]);
    expect((await configError(() => connect(`${scheme}://h`, { [`${scheme}x`]: {} }))).field).toBe(
      `${scheme}x`,
    );
  });

  it('producer refuses null, arrays and wrongly typed options', async () => {
    const cases: [unknown, string][] = [
      [null, 'producer'],
      [[], 'producer'],
      ['all', 'producer'],
      [{ idempotent: 'yes' }, 'producer.idempotent'],
      [{ onError: 'x' }, 'producer.onError'],
      [{ idempotent: 'yes', onError: 'x' }, 'producer.idempotent'],
    ];
    for (const [options, field] of cases) {
      expect((await configError(() => broker.producer(options as never))).field).toBe(field);
    }
  });

  it('ensureTopic refuses null options, unknown keys and reserved names', async () => {
    const topic = unique('t');
    expect((await configError(() => broker.ensureTopic(topic, null as never))).field).toBe(
      'ensureTopic.options',
    );
    expect((await configError(() => broker.ensureTopic(topic, { partitionz: 2 } as never))).field).toBe(
      'ensureTopic.partitionz',
    );
    for (const name of ['mq.delay.100ms', 'MQ.x', 'mq.', '.', '..']) {
      expect((await configError(() => broker.ensureTopic(name))).field).toBe('ensureTopic.topic');
    }
  });

  it('send refuses headers that are not a plain object of strings, and reserved header names', async () => {
    const producer = broker.producer();
    const topic = unique('t');
    const cases: [unknown, string][] = [
      ['a=b', 'message.headers'],
      [['x'], 'message.headers'],
      [new Map([['a', 'b']]), 'message.headers'],
      [null, 'message.headers'],
      [{ 'MQ-ID': 'forged' }, 'message.headers.MQ-ID'],
      [{ 'Mq-Attempt': '9' }, 'message.headers.Mq-Attempt'],
      [{ 'content-type': 'text/plain' }, 'message.headers.content-type'],
      [{ 'Content-Type': 'text/plain' }, 'message.headers.Content-Type'],
      [{ '': 'x' }, 'message.headers'],
      [{ a: 1 }, 'message.headers.a'],
      [JSON.parse('{"__proto__": "x"}'), 'message.headers.__proto__'],
    ];
    for (const [headers, field] of cases) {
      const error = await configError(() => producer.send({ topic, body: 1, headers: headers as never }));
      expect(error.field).toBe(field);
    }
    const contentType = await configError(() =>
      producer.send({ topic, body: 1, headers: { 'content-type': 'text/plain' } }),
    );
    expect(contentType.message).toContain("set by the topic's codec");
    // Nothing was stored by the refused sends.
    expect((await broker.backlog(topic, 'g')).total).toBe(0);
  });

  it('send and subscribe refuse internal and dot-only topic names', async () => {
    const producer = broker.producer();
    for (const topic of ['mq.delay.100ms', 'mq.delay.undeliverable', 'Mq.x', '.', '..']) {
      expect((await configError(() => producer.send({ topic, body: 1 }))).field).toBe('message.topic');
      expect((await configError(() => broker.subscribe({ topic, group: 'g' }, () => {}))).field).toBe(
        'subscribe.topic',
      );
    }
    const dl = await configError(() =>
      broker.subscribe({ topic: unique('t'), group: 'g', deadLetter: { topic: 'mq.dlq' } }, () => {}),
    );
    expect(dl.field).toBe('subscribe.deadLetter.topic');
    expect(
      (await configError(() => broker.subscribe({ topic: unique('t'), group: '..' }, () => {}))).field,
    ).toBe('subscribe.group');
  });

  it('a topic name of any type or size is refused with a short message, never a TypeError', async () => {
    const producer = broker.producer();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const huge = 'x'.repeat(100_000);
    const names: [unknown, string][] = [
      [10n, 'got 10'],
      [circular, 'got an object'],
      [Object.create(null), 'got an object'],
      [Symbol('s'), 'got a symbol'],
      [huge, `got "${'x'.repeat(40)}..."`],
    ];
    for (const [name, says] of names) {
      const sent = await configError(() => producer.send({ topic: { name } as never, body: 1 }));
      expect(sent.field).toBe('message.topic');
      expect(sent.message).toContain(says);
      expect(sent.message.length).toBeLessThan(300);
      const subscribed = await configError(() =>
        broker.subscribe({ topic: { name } as never, group: 'g' }, () => {}),
      );
      expect(subscribed.field).toBe('subscribe.topic');
      expect(subscribed.message).toContain(says);
    }
  });

  it('subscribe refuses non-object retry and dead-letter options', async () => {
    const topic = unique('t');
    const cases: [object, string][] = [
      [{ retry: 5 }, 'subscribe.retry'],
      [{ retry: { backoff: [] } }, 'subscribe.retry.backoff'],
      [{ deadLetter: [] }, 'subscribe.deadLetter'],
    ];
    for (const [extra, field] of cases) {
      const error = await configError(() =>
        broker.subscribe({ topic, group: 'g', ...extra } as never, () => {}),
      );
      expect(error.field).toBe(field);
    }
    expect((await configError(() => broker.subscribe([] as never, () => {}))).field).toBe('subscribe');
  });

  it('close refuses a negative timeout and bad options, and a later close still works', async () => {
    const topic = unique('t');
    const subscription = await broker.subscribe({ topic, group: 'g' }, () => {});
    expect((await configError(() => subscription.close({ timeoutMs: -1 }))).field).toBe('close.timeoutMs');
    expect((await configError(() => subscription.close({ timeoutMs: Number.NaN }))).field).toBe(
      'close.timeoutMs',
    );
    expect((await configError(() => subscription.close(null as never))).field).toBe('close.options');
    expect((await configError(() => subscription.close({ timeout: 5 } as never))).field).toBe(
      'close.timeout',
    );
    await subscription.close({ timeoutMs: 1000 });
  });
});

describe('memory sendOneWay', () => {
  it('never throws: validation failures and a closed producer go to onError', async () => {
    const broker = await connect(`memory://${unique('oneway')}`);
    const errors: MqError[] = [];
    const producer = broker.producer({ onError: (e) => errors.push(e) });
    const topic = unique('t');
    const bad: unknown[] = [
      null,
      'text',
      { topic: 'mq.delay.100ms', body: 1 },
      { topic, body: 1, headers: 'a=b' },
      { topic, body: 1, headers: { 'MQ-ID': 'x' } },
      { topic, body: undefined },
      { topic, body: 1, delayMs: -1 },
    ];
    for (const message of bad) {
      expect(() => producer.sendOneWay(message as OutgoingMessage<unknown>)).not.toThrow();
    }
    expect(errors.map((e) => e.code)).toEqual([
      'CONFIG',
      'CONFIG',
      'CONFIG',
      'CONFIG',
      'CONFIG',
      'DECODE',
      'CONFIG',
    ]);
    await producer.close();
    expect(() => producer.sendOneWay({ topic, body: 1 })).not.toThrow();
    expect(errors.at(-1)?.code).toBe('CLOSED');
    await broker.close();
  });

  it('never throws when onError throws: the failure goes to the logger', async () => {
    const lines: string[] = [];
    const logger: Logger = {
      debug() {},
      info() {},
      warn() {},
      error: (_fields, message) => {
        lines.push(message);
      },
    };
    const broker = await connect(`memory://${unique('oneway')}`, { logger });
    const producer = broker.producer({
      onError: () => {
        throw new Error('onError broke');
      },
    });
    expect(() => producer.sendOneWay({ topic: unique('t'), body: 1, headers: 'a=b' as never })).not.toThrow();
    expect(lines.some((l) => l.includes('onError threw'))).toBe(true);
    await broker.close();
  });
});

import { type ChannelModel, connect } from 'amqplib';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { coalesceWrites } from '../../src/adapters/rabbitmq/coalesced-writes.js';

// mqkit corks amqplib's socket for each round of frame writes. Counted here on a real
// connection: the socket's _write (one chunk) and _writev (several) calls while 200 messages
// are published at once and confirmed.

const opened: ChannelModel[] = [];

afterEach(async () => {
  for (const model of opened.splice(0)) await model.close().catch(() => {});
});

async function publishCountingWrites(coalesce: boolean): Promise<{ calls: number; chunks: number }> {
  const model = await connect(inject('amqpUrl'));
  opened.push(model);
  expect(coalesce ? coalesceWrites(model) : false).toBe(coalesce);
  const socket = (model as unknown as { connection: { stream: Record<string, unknown> } }).connection.stream;
  const counted = { calls: 0, chunks: 0 };
  for (const name of ['_write', '_writev'] as const) {
    const original = socket[name] as ((...args: unknown[]) => unknown) | undefined;
    if (typeof original !== 'function') continue;
    socket[name] = function (this: unknown, ...args: unknown[]) {
      counted.calls++;
      counted.chunks += name === '_writev' ? (args[0] as unknown[]).length : 1;
      return original.apply(this, args);
    };
  }
  const channel = await model.createConfirmChannel();
  const queue = (await channel.assertQueue('', { exclusive: true })).queue;
  const before = { ...counted };
  for (let i = 0; i < 200; i++) channel.sendToQueue(queue, Buffer.alloc(100, i), { persistent: true });
  await channel.waitForConfirms();
  expect((await channel.checkQueue(queue)).messageCount).toBe(200);
  return { calls: counted.calls - before.calls, chunks: counted.chunks - before.chunks };
}

describe('amqplib socket writes (coalesceWrites)', () => {
  it('hands a round of frames to the socket in a few writes instead of one per message', async () => {
    const plain = await publishCountingWrites(false);
    const coalesced = await publishCountingWrites(true);
    // Every message went out as its own chunk either way; only the number of writes differs.
    expect(plain.chunks).toBeGreaterThanOrEqual(200);
    expect(coalesced.chunks).toBeGreaterThanOrEqual(200);
    expect(plain.calls).toBeGreaterThanOrEqual(100);
    expect(coalesced.calls).toBeLessThan(plain.calls / 5);
  });

  it('changes nothing when the environment turns it off', async () => {
    process.env.MQKIT_AMQPLIB_COALESCE = 'off';
    try {
      const model = await connect(inject('amqpUrl'));
      opened.push(model);
      expect(coalesceWrites(model)).toBe(false);
    } finally {
      delete process.env.MQKIT_AMQPLIB_COALESCE;
    }
  });
});

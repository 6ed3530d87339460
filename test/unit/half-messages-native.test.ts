import { describe, expect, it } from 'vitest';
import { NATIVE_TRANSACTIONS, type NativeTransactions } from '../../src/core/native-transactions.js';
import { halfMessages } from '../../src/patterns/index.js';

// The seam between halfMessages and a broker's native transactional messages (RocketMQ's):
// what halfMessages does with what the adapter reports. The adapter side runs against a real
// RocketMQ in test/integration/rocketmq-half-messages.test.ts.
describe('halfMessages over native transactional messages', () => {
  it('resolves prepared, and reports the error, when the decision could not be delivered after the local transaction committed', async () => {
    const endError = new Error('endTransaction: connection reset');
    const native: NativeTransactions = {
      open: () => ({
        publishTo: async () => {},
        send: async (_message, decide) => {
          const decision = await decide('id-1');
          expect(decision).toBe('commit');
          return { id: 'id-1', decision: 'unknown', endError };
        },
        close: async () => {},
      }),
    };
    const producer = { sendBatch: async () => [], [NATIVE_TRANSACTIONS]: native };
    const warnings: string[] = [];
    const logger = {
      debug: () => {},
      info: () => {},
      warn: (_fields: unknown, message: string) => warnings.push(message),
      error: () => {},
    };
    const tx = await halfMessages({
      pool: { connect: async () => ({}) } as never,
      producer: producer as never,
      group: 'g',
      checkLocalTransaction: () => 'unknown',
      logger,
    });
    const errors: unknown[] = [];
    tx.on('error', (e) => errors.push(e.error));
    const resolved: unknown[] = [];
    tx.on('resolved', (e) => resolved.push(e));
    const result = await tx.sendInTransaction({ topic: 't', body: {} }, async () => 'commit' as const);
    expect(result).toEqual({ id: 'id-1', state: 'prepared' });
    expect(errors).toEqual([endError]);
    expect(warnings.some((w) => w.includes('connection reset'))).toBe(true);
    expect(resolved).toEqual([]);
    await tx.close();
  });
});

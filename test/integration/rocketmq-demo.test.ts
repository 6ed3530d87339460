import { describe, expect, inject, it } from 'vitest';
import { formatDemo, runDemo } from '../../src/cli/demo.js';
import { connect } from '../../src/index.js';

describe('mqkit demo on rocketmq', () => {
  it('runs the order scenario unchanged: every service handles its share once, in order per order id', async () => {
    const url = inject('rocketmqUrl');
    const broker = await connect(url);
    try {
      const summary = await runDemo(broker, url, 300);
      expect(summary.duplicatesSent).toBe(3);
      expect(summary.messagesSent).toBe(603);
      expect(summary.services).toEqual([
        { name: 'stock', tags: 'all', handled: 600, duplicatesAbsorbed: 3, orderViolations: 0 },
        { name: 'coupons', tags: 'placed', handled: 300, duplicatesAbsorbed: 3, orderViolations: 0 },
        { name: 'points', tags: 'paid', handled: 300, duplicatesAbsorbed: 0, orderViolations: 0 },
      ]);
      expect(formatDemo(summary)).toContain('per-key order violations');
    } finally {
      await broker.close();
    }
  }, 120_000);
});

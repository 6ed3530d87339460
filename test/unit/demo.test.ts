import { describe, expect, it } from 'vitest';
import { formatDemo, runDemo } from '../../src/cli/demo.js';
import { connect } from '../../src/index.js';

describe('mqkit demo', () => {
  it('runs the order scenario: every service handles its share once, in order per order id', async () => {
    const broker = await connect('memory://demo-test');
    const summary = await runDemo(broker, 'memory://demo-test', 1000);
    await broker.close();
    expect(summary.duplicatesSent).toBe(10);
    expect(summary.messagesSent).toBe(2010);
    expect(summary.services).toEqual([
      { name: 'stock', tags: 'all', handled: 2000, duplicatesAbsorbed: 10, orderViolations: 0 },
      { name: 'coupons', tags: 'placed', handled: 1000, duplicatesAbsorbed: 10, orderViolations: 0 },
      { name: 'points', tags: 'paid', handled: 1000, duplicatesAbsorbed: 0, orderViolations: 0 },
    ]);
    expect(formatDemo(summary)).toContain('per-key order violations');
  });
});

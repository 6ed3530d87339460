import { describe, expect, it } from 'vitest';
import { lagCommand } from '../../src/cli/lag.js';
import type { Backlog, Broker } from '../../src/index.js';

describe('mqkit lag --watch', () => {
  it('keeps watching when a sample after the first fails: that frame is the error line', async () => {
    let calls = 0;
    // Only what lagCommand uses of a broker: its kind and backlog.
    const broker = {
      kind: 'memory',
      async backlog(topic: string, group: string): Promise<Backlog> {
        calls++;
        if (calls === 2) throw new Error('connection reset');
        const partitions = [{ partition: 0, backlog: 5, committed: '0', end: '5', consumers: 1 }];
        return { topic, group, total: 5, partitions };
      },
    } as unknown as Broker;
    const options = { topic: 't', group: 'g', intervalMs: 10, samples: 3, watch: true };
    const frames = (await lagCommand(broker, { ...options, json: true })).split('\n');
    expect(frames).toHaveLength(3);
    expect(JSON.parse(frames[0] as string).total).toBe(5);
    expect(JSON.parse(frames[1] as string)).toEqual({ error: 'sample failed: connection reset' });
    expect(JSON.parse(frames[2] as string).total).toBe(5);
    calls = 0;
    const table = await lagCommand(broker, { ...options, json: false });
    expect(table.split('\n\n')[1]).toBe('sample failed: connection reset');
  });
});

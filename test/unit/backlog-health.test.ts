import { describe, expect, it } from 'vitest';
import {
  type FullSample,
  MIN_SAMPLES,
  type PartitionSample,
  partitionHealth,
  partitionRates,
  worseHealth,
} from '../../src/patterns/index.js';

/** Samples one second apart from t = 0: [committed, end] pairs, backlog end - committed. */
function offsets(pairs: [number, number][], consumers?: number): PartitionSample[] {
  return pairs.map(([committed, end], i) => ({
    at: i * 1000,
    committed,
    end,
    backlog: end - committed,
    consumers,
  }));
}

/** Samples without offsets (RabbitMQ): backlog only. */
function queue(backlogs: number[], consumers?: number): PartitionSample[] {
  return backlogs.map((backlog, i) => ({ at: i * 1000, backlog, consumers }));
}

describe('partitionHealth', () => {
  it('is unknown with nothing, or too few samples and a backlog', () => {
    expect(partitionHealth([])).toBe('unknown');
    expect(MIN_SAMPLES).toBe(3);
    expect(
      partitionHealth(
        offsets([
          [0, 5],
          [1, 6],
        ]),
      ),
    ).toBe('unknown');
  });

  it('is ok with an empty backlog now, even from one sample', () => {
    expect(partitionHealth(offsets([[5, 5]]))).toBe('ok');
    expect(partitionHealth(queue([9, 4, 0]))).toBe('ok');
  });

  it('is ok when the backlog was empty at any sample of the window (Burrow rule 1)', () => {
    expect(
      partitionHealth(
        offsets([
          [10, 12],
          [12, 12],
          [12, 15],
          [13, 17],
        ]),
      ),
    ).toBe('ok');
  });

  it('is catching-up when behind throughout, moving, and the backlog shrank', () => {
    expect(
      partitionHealth(
        offsets([
          [0, 100],
          [20, 110],
          [50, 115],
          [80, 120],
        ]),
      ),
    ).toBe('catching-up');
    expect(partitionHealth(queue([100, 80, 85, 60], 1))).toBe('catching-up');
  });

  it('is ok (keeping pace, as Burrow) when moving with a steady backlog', () => {
    expect(
      partitionHealth(
        offsets([
          [0, 10],
          [10, 20],
          [20, 30],
        ]),
      ),
    ).toBe('ok');
    // Up and down in between, no larger at the end than at the start.
    expect(
      partitionHealth(
        offsets([
          [0, 10],
          [10, 25],
          [20, 30],
        ]),
      ),
    ).toBe('ok');
  });

  it('decides catching-up or falling-behind on the trend over the window, not on one step', () => {
    // Shrank once (100 -> 90), then grew to 150: falling behind.
    expect(
      partitionHealth(
        offsets(
          [
            [0, 100],
            [20, 110],
            [30, 150],
            [40, 190],
          ],
          1,
        ),
      ),
    ).toBe('falling-behind');
    // Grew once (100 -> 110), then shrank to 60: catching up.
    expect(
      partitionHealth(
        offsets(
          [
            [0, 100],
            [10, 120],
            [60, 130],
            [80, 140],
          ],
          1,
        ),
      ),
    ).toBe('catching-up');
  });

  it('is falling-behind when moving but the backlog never shrank and grew (Burrow warning)', () => {
    expect(
      partitionHealth(
        offsets(
          [
            [0, 10],
            [5, 20],
            [10, 30],
            [15, 40],
          ],
          1,
        ),
      ),
    ).toBe('falling-behind');
  });

  it('is stalled when behind, consumers attached, and the position never moved', () => {
    expect(
      partitionHealth(
        offsets(
          [
            [7, 10],
            [7, 12],
            [7, 20],
          ],
          1,
        ),
      ),
    ).toBe('stalled');
    // Unknown consumers: still stalled (the offset did not move while behind).
    expect(
      partitionHealth(
        offsets([
          [7, 10],
          [7, 10],
          [7, 10],
        ]),
      ),
    ).toBe('stalled');
    // Without offsets: a backlog that does not move.
    expect(partitionHealth(queue([5, 5, 5], 1))).toBe('stalled');
  });

  it('without offsets, a backlog that never shrank but grew is falling-behind (slow or stuck)', () => {
    expect(partitionHealth(queue([5, 5, 8], 1))).toBe('falling-behind');
    expect(partitionHealth(queue([5, 9, 14, 20], 1))).toBe('falling-behind');
  });

  it('is stalled when it stopped moving for longer than it moved, consumers attached', () => {
    // Moved from t=0 to t=2 (2 s), idle from t=2 to t=5 (3 s).
    expect(
      partitionHealth(
        offsets(
          [
            [0, 10],
            [3, 12],
            [6, 12],
            [6, 12],
            [6, 13],
            [6, 14],
          ],
          1,
        ),
      ),
    ).toBe('stalled');
  });

  it('is not stalled while the idle time is shorter than the time it moved', () => {
    // Moved t=0..3 (3 s), idle t=3..5 (2 s): still catching up.
    expect(
      partitionHealth(
        offsets(
          [
            [0, 10],
            [3, 12],
            [6, 12],
            [9, 12],
            [9, 12],
            [9, 12],
          ],
          1,
        ),
      ),
    ).toBe('catching-up');
  });

  it('is never stalled for a consumer keeping pace that commits every 5 s, sampled every 1 s', () => {
    // 10 messages/s in on top of a standing backlog of 100; the consumer keeps pace and
    // commits what it handled every 5 s. Every window of the default 10 samples over a minute.
    const all: PartitionSample[] = [];
    for (let t = 0; t < 60; t++) {
      const end = 100 + 10 * t;
      const committed = 10 * 5 * Math.floor(t / 5);
      all.push({ at: t * 1000, committed, end, backlog: end - committed, consumers: 1 });
    }
    const verdicts = new Set<string>();
    for (let i = 10; i <= all.length; i++) verdicts.add(partitionHealth(all.slice(i - 10, i)));
    expect([...verdicts]).not.toContain('stalled');
    expect([...verdicts]).not.toContain('stopped');
  });

  it('is stopped with no consumer at the last two samples and a backlog', () => {
    const samples = offsets(
      [
        [0, 10],
        [5, 10],
        [5, 10],
        [5, 10],
      ],
      1,
    ).map((s, i) => (i >= 2 ? { ...s, consumers: 0 } : s));
    expect(partitionHealth(samples)).toBe('stopped');
    expect(partitionHealth(queue([4, 4, 4], 0))).toBe('stopped');
  });

  it('is not stopped by one sample without consumers (a rebalance)', () => {
    const samples = offsets(
      [
        [0, 10],
        [2, 10],
        [4, 10],
      ],
      1,
    ).map((s, i) => (i === 2 ? { ...s, consumers: 0 } : s));
    expect(partitionHealth(samples)).toBe('catching-up');
  });

  it('is stopped, consumers unknown, when idle for longer than the progress history spans (Burrow rule 4)', () => {
    expect(
      partitionHealth(
        offsets([
          [0, 10],
          [4, 10],
          [4, 10],
          [4, 10],
        ]),
      ),
    ).toBe('stopped');
  });

  it('is rewound when the committed position went backwards, whatever the backlog', () => {
    expect(
      partitionHealth(
        offsets([
          [50, 50],
          [0, 50],
          [10, 50],
        ]),
      ),
    ).toBe('rewound');
    expect(
      partitionHealth(
        offsets([
          [50, 50],
          [0, 50],
        ]),
      ),
    ).toBe('rewound');
  });

  it('forgets a rewind once it left the window', () => {
    expect(
      partitionHealth(
        offsets([
          [0, 50],
          [10, 50],
          [50, 50],
        ]),
      ),
    ).toBe('ok');
  });

  it('ranks verdicts for the group', () => {
    expect(worseHealth('ok', 'stalled')).toBe('stalled');
    expect(worseHealth('stopped', 'stalled')).toBe('stopped');
    expect(worseHealth('catching-up', 'unknown')).toBe('catching-up');
  });
});

describe('partitionRates', () => {
  it('derives rates in and out, time to drain and an estimated lag from offsets', () => {
    // 10 in/s, 30 out/s, over 4 s.
    const samples: FullSample[] = offsets([
      [0, 100],
      [30, 110],
      [60, 120],
      [90, 130],
      [120, 140],
    ]);
    const r = partitionRates(samples);
    expect(r.rateIn).toBe(10);
    expect(r.rateOut).toBe(30);
    expect(r.netRate).toBe(-20);
    expect(r.drainSeconds).toBe(1); // 20 left, shrinking 20/s
    // committed 120: stored when the end passed 120, between t=1 (110) and t=2 (120) -> t=2.1, age 1.9 s.
    expect(r.lagSource).toBe('estimated');
    expect(r.lagSeconds).toBeCloseTo(1.9, 5);
  });

  it('extrapolates the age of a message stored before the window at the rate in', () => {
    const r = partitionRates(
      offsets([
        [0, 100],
        [0, 110],
        [0, 120],
      ]),
    );
    // 2 s of window + 100 messages at 10/s before it.
    expect(r.lagSeconds).toBeCloseTo(12, 5);
    expect(r.drainSeconds).toBeUndefined();
  });

  it('measures the lag from the oldest message store time where the broker gives it', () => {
    const r = partitionRates([
      { at: 10_000, backlog: 3, oldestTimestamp: 7_500 },
      { at: 11_000, backlog: 3, oldestTimestamp: 7_500 },
    ]);
    expect(r.lagSeconds).toBe(3.5);
    expect(r.lagSource).toBe('measured');
  });

  it('estimates lag and drain from the shrinking rate without offsets', () => {
    const r = partitionRates(queue([100, 80, 60]));
    expect(r.rateIn).toBeUndefined();
    expect(r.rateOut).toBeUndefined();
    expect(r.netRate).toBe(-20);
    expect(r.drainSeconds).toBe(3);
    expect(r.lagSeconds).toBe(3);
    expect(r.lagSource).toBe('estimated');
    expect(partitionRates(queue([10, 10])).lagSeconds).toBeUndefined();
  });

  it('is zero lag and zero drain with no backlog', () => {
    const r = partitionRates(queue([5, 0]));
    expect(r.lagSeconds).toBe(0);
    expect(r.drainSeconds).toBe(0);
  });
});

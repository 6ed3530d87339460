import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/core/uuid.js';

describe('uuidv7', () => {
  it('has the v7 layout and carries its millisecond timestamp', () => {
    const now = Date.UTC(2026, 10, 24, 12, 0, 0, 123);
    const id = uuidv7(now);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(now);
  });

  it('is unique and sorts by creation time across pool refills', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => uuidv7(1_700_000_000_000 + i));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('carries its own millisecond when ids of one millisecond and of others interleave', () => {
    const at = [1_700_000_000_000, 1_700_000_000_000, 1_800_000_000_000, 1_700_000_000_000, 0, 2 ** 48 - 1];
    const ids = at.map((ms) => uuidv7(ms));
    expect(ids.map((id) => Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16))).toEqual(at);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

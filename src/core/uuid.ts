import { randomFillSync } from 'node:crypto';

/** Random bytes per id: the 74 random bits of a v7 id, rounded up. */
const RANDOM_BYTES = 10;
// One randomFillSync call costs about as much as filling tens of KiB more, so the pool is
// refilled rarely: 4096 ids per call (measured: ~50 ns per id at 256 ids per call, ~4 at 4096).
const POOL_IDS = 4096;
const pool = Buffer.allocUnsafe(RANDOM_BYTES * POOL_IDS);
let poolOffset = pool.length;
/** ASCII of one id, written in place: one flat string per id instead of a tree of slices. */
const text = Buffer.alloc(36, 0x2d); // '-' stays at 8, 13, 18 and 23
const HEX = Buffer.from('0123456789abcdef');
/** Where byte i's two hex digits go in the 36-character form. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
/** The millisecond whose digits `text` holds (bytes 0-5); ids of one millisecond share them. */
let textMs = -1;

function writeByte(i: number, byte: number): void {
  const at = AT[i] as number;
  text[at] = HEX[byte >> 4] as number;
  text[at + 1] = HEX[byte & 0x0f] as number;
}

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids sort by creation time
 * to the millisecond (not within one), which keeps de-duplication indexes (B-trees) local.
 * Random bytes come from a pooled CSPRNG fill because this sits on the send hot path; callers
 * making many ids at once may pass one `now` for all of them (a clock read costs about as much
 * as the rest of the id).
 */
export function uuidv7(now: number = Date.now()): string {
  if (now !== textMs) {
    textMs = now;
    const high = Math.floor(now / 0x1000000); // 48 bits do not fit the 32-bit bitwise operators
    const low = now - high * 0x1000000;
    writeByte(0, (high >>> 16) & 0xff);
    writeByte(1, (high >>> 8) & 0xff);
    writeByte(2, high & 0xff);
    writeByte(3, (low >>> 16) & 0xff);
    writeByte(4, (low >>> 8) & 0xff);
    writeByte(5, low & 0xff);
  }
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const o = poolOffset;
  poolOffset += RANDOM_BYTES;
  writeByte(6, 0x70 | ((pool[o] as number) & 0x0f)); // version 7
  writeByte(7, pool[o + 1] as number);
  writeByte(8, 0x80 | ((pool[o + 2] as number) & 0x3f)); // variant 10
  for (let i = 3; i < RANDOM_BYTES; i++) writeByte(6 + i, pool[o + i] as number);
  return text.toString('latin1');
}

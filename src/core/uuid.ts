import { randomFillSync } from 'node:crypto';

const POOL_IDS = 256;
const pool = Buffer.allocUnsafe(16 * POOL_IDS);
let poolOffset = pool.length;
/** ASCII of one id, written in place: one flat string per id instead of a tree of slices. */
const text = Buffer.alloc(36, 0x2d); // '-' stays at 8, 13, 18 and 23
const HEX = Buffer.from('0123456789abcdef');
/** Where byte i's two hex digits go in the 36-character form. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids sort by creation time
 * to the millisecond (not within one), which keeps de-duplication indexes (B-trees) local.
 * Random bytes come from a pooled CSPRNG fill because this sits on the send hot path.
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const o = poolOffset;
  poolOffset += 16;
  pool.writeUIntBE(now, o, 6);
  pool[o + 6] = 0x70 | ((pool[o + 6] as number) & 0x0f);
  pool[o + 8] = 0x80 | ((pool[o + 8] as number) & 0x3f);
  for (let i = 0; i < 16; i++) {
    const byte = pool[o + i] as number;
    const at = AT[i] as number;
    text[at] = HEX[byte >> 4] as number;
    text[at + 1] = HEX[byte & 0x0f] as number;
  }
  return text.toString('latin1');
}

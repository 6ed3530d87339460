import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '../../src/core/partitioner.js';

describe('murmur2 partitioner', () => {
  // Values produced by Kafka's Java client (org.apache.kafka.common.utils.Utils.murmur2).
  const javaValues: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
    ['1', -1993445489],
    ['12', 126087238],
    ['123', -267702483],
    ['1234', -1614185708],
    ['12345', -1188365604],
  ];

  it.each(javaValues)('hashes %j as the Java client does', (key, expected) => {
    expect(murmur2(key)).toBe(expected);
  });

  it('hashes bytes and their UTF-8 string alike', () => {
    expect(murmur2(Buffer.from('订单-42', 'utf8'))).toBe(murmur2('订单-42'));
  });

  it('maps a key to toPositive(hash) % partitions', () => {
    for (const [key, hash] of javaValues) {
      for (const partitions of [1, 3, 12, 100]) {
        expect(partitionForKey(key, partitions)).toBe((hash & 0x7fffffff) % partitions);
      }
    }
  });
});

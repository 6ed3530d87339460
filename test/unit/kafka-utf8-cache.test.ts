import { describe, expect, it } from 'vitest';
import { Utf8Cache } from '../../src/adapters/kafka/kafkajs/utf8-cache.js';

describe('Utf8Cache', () => {
  it('gives the same strings as buffer.toString, cached or not, for names of equal length and multi-byte text', () => {
    const cache = new Utf8Cache(3, 16);
    const names = [
      'mq-id',
      'mq-ix',
      'content-type',
      'héllo',
      '日本',
      '',
      'a-much-longer-header-name',
      'mq-id',
      'mq-ix',
      'other',
    ];
    const buffer = Buffer.from(`xx${names.join('|')}yy`);
    for (let round = 0; round < 2; round++) {
      let start = 2;
      for (const name of names) {
        const end = start + Buffer.byteLength(name);
        expect(cache.read(buffer, start, end)).toBe(buffer.toString('utf8', start, end));
        expect(cache.read(buffer, start, end)).toBe(name);
        start = end + 1;
      }
    }
  });

  it('compares every byte: names differing only in their last byte are told apart once cached', () => {
    const cache = new Utf8Cache(4, 16);
    expect(cache.read(Buffer.from('mq-ida'), 0, 6)).toBe('mq-ida');
    expect(cache.read(Buffer.from('mq-idb'), 0, 6)).toBe('mq-idb');
    expect(cache.read(Buffer.from('nq-ida'), 0, 6)).toBe('nq-ida');
    expect(cache.read(Buffer.from('mq-ida'), 0, 6)).toBe('mq-ida');
  });
});

import { afterEach, describe, expect, it, vi } from 'vitest';
import { processWarningLogger } from '../../src/core/logger.js';

describe('the default logger (process warnings)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('emits each distinct message once, and says so when its cap starts dropping messages', () => {
    const emitted: string[] = [];
    vi.spyOn(process, 'emitWarning').mockImplementation(((message: string) => {
      emitted.push(message);
    }) as typeof process.emitWarning);
    const logger = processWarningLogger();
    logger.warn({}, 'same');
    logger.error({}, 'same');
    logger.info({}, 'dropped: info');
    expect(emitted).toEqual(['same']);
    for (let i = 0; i < 250; i++) logger.warn({ code: 'X' }, `message ${i}`);
    // 100 distinct messages, then one notice, then nothing however many more arrive.
    expect(emitted).toHaveLength(101);
    expect(emitted.slice(0, 100)).toEqual(['same', ...Array.from({ length: 99 }, (_, i) => `message ${i}`)]);
    const notice = emitted[100] ?? '';
    expect(notice).toMatch(/further distinct .*dropped/);
    expect(notice).toMatch(/logger/);
    logger.error({}, 'yet another');
    expect(emitted).toHaveLength(101);
  });
});

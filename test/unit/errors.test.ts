import { describe, expect, it } from 'vitest';
import * as errors from '../../src/core/errors.js';

/**
 * A second copy of the errors module, as an application gets when two packages it uses each
 * install their own mqkit: the same code, its own classes. The query string makes vitest load
 * and evaluate the file again as a module of its own.
 */
async function secondCopy(): Promise<typeof errors> {
  const url = new URL('../../src/core/errors.ts', import.meta.url);
  url.search = '?second-copy';
  return (await import(/* @vite-ignore */ url.href)) as typeof errors;
}

describe('isMqError', () => {
  it("recognises another copy's errors, by code too", async () => {
    const other = await secondCopy();
    expect(other.MqError).not.toBe(errors.MqError);
    const error = new other.PublishError('not stored', { retriable: false });
    expect(error instanceof errors.MqError).toBe(false);
    expect(errors.isMqError(error)).toBe(true);
    expect(errors.isMqError(error, 'PUBLISH')).toBe(true);
    expect(errors.isMqError(error, 'TIMEOUT')).toBe(false);
    expect(other.isMqError(new errors.ConfigError('retry.attempts', 'must be at least 1'), 'CONFIG')).toBe(
      true,
    );
  });

  it('refuses what only looks like one: no brand, or a code mqkit does not have', () => {
    const brand = Symbol.for('mqkit.error');
    expect(errors.isMqError(Object.assign(new Error('x'), { code: 'PUBLISH', retriable: true }))).toBe(false);
    expect(errors.isMqError({ [brand]: true, code: 'PUBLISH', retriable: true, message: 'x' })).toBe(true);
    expect(errors.isMqError({ [brand]: true, code: 'ECONNREFUSED', retriable: true, message: 'x' })).toBe(
      false,
    );
    expect(errors.isMqError({ [brand]: true, code: 'PUBLISH', message: 'x' })).toBe(false);
    for (const value of [undefined, null, 'PUBLISH', 42]) expect(errors.isMqError(value)).toBe(false);
  });

  it("keeps the brand out of an error's own keys (logs, JSON)", () => {
    const error = new errors.TimeoutError('slow');
    expect(Object.getOwnPropertySymbols(error)).toEqual([]);
    expect(Object.keys(error).sort()).toEqual(['code', 'name', 'retriable']);
  });
});

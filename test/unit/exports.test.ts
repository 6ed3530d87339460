import { describe, expect, it } from 'vitest';

/**
 * What `import ... from 'mqkit'` offers at run time: the API, and none of the helpers behind it
 * (murmur2, uuidv7, redact, the wire header names), which stay free to change.
 */
describe("the root entry point's exports", () => {
  it('are the API and nothing else', async () => {
    const root = await import('../../src/index.js');
    expect(Object.keys(root).sort()).toEqual([
      'ClosedError',
      'ConfigError',
      'ConflictError',
      'ConnectionError',
      'DecodeError',
      'MqError',
      'PublishError',
      'TimeoutError',
      'UnsupportedError',
      'bytesCodec',
      'connect',
      'defineTopic',
      'isMqError',
      'jsonCodec',
      'registerAdapter',
    ]);
  });

  it('of connect.ts are connect and registerAdapter (no helper passed through)', async () => {
    const connect = await import('../../src/connect.js');
    expect(Object.keys(connect).sort()).toEqual(['connect', 'registerAdapter']);
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('mqkit/adapter', () => {
  it('is all the toy adapter of the third-party conformance run imports', () => {
    const source = readFileSync(new URL('../third-party/toy-log-adapter.ts', import.meta.url), 'utf8');
    const imported = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(new Set(imported)).toEqual(new Set(['mqkit', 'mqkit/adapter']));
  });

  it('exports the engine, the transport pieces and the helpers an adapter needs, at run time', async () => {
    const entry = await import('mqkit/adapter');
    expect(Object.keys(entry).sort()).toEqual([
      'Claim',
      'ConsumerEngine',
      'EventHub',
      'HEADERS',
      'OffsetTracker',
      'SubscriptionSet',
      'defaultAdapterContext',
      'encodeMessage',
      'groupName',
      'oneWayReporter',
      'partitionForKey',
      'pull',
      'resolveEnsureTopic',
      'resolveProducerOptions',
      'resolveSubscription',
      'userTopicName',
    ]);
  });
});

import { inject } from 'vitest';
import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'rocketmq',
  connect: () => connect(inject('rocketmqUrl')),
  // Written out, not imported from the adapter: the suite checks the broker reports these.
  capabilities: {
    replay: true,
    brokerSideTagFilter: false,
    keyIsolation: false,
    partitions: true,
    nativeDelay: true,
    durable: true,
    acks: ['all'],
    maxMessageBytes: 4 * 1024 * 1024 - 64 * 1024,
  },
  timeoutMs: 30_000,
});

import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'memory',
  connect: () => connect('memory://conformance'),
  // Written out, not imported from the adapter: the suite checks the broker reports these.
  capabilities: {
    replay: true,
    brokerSideTagFilter: false,
    keyIsolation: true,
    partitions: true,
    nativeDelay: true,
    durable: false,
    acks: ['all', 'leader', 'none'],
    maxMessageBytes: 64 * 1024 * 1024,
  },
  timeoutMs: 10_000,
});

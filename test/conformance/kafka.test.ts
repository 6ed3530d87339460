import { inject } from 'vitest';
import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'kafka',
  connect: () => connect(inject('kafkaUrl')),
  // Written out, not imported from the adapter: the suite checks the broker reports these.
  capabilities: {
    replay: true,
    brokerSideTagFilter: false,
    keyIsolation: true,
    partitions: true,
    nativeDelay: false,
    durable: true,
    acks: ['all', 'leader', 'none'],
    maxMessageBytes: 1024 * 1024,
  },
  timeoutMs: 30_000,
});

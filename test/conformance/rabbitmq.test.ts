import { inject } from 'vitest';
import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'rabbitmq',
  connect: () => connect(inject('amqpUrl')),
  // Written out, not imported from the adapter: the suite checks the broker reports these.
  capabilities: {
    replay: false,
    brokerSideTagFilter: true,
    keyIsolation: true,
    partitions: true,
    nativeDelay: false,
    durable: true,
    acks: ['all', 'leader', 'none'],
    maxMessageBytes: 16 * 1024 * 1024,
  },
});

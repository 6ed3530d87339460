import { connect, registerAdapter } from 'mqkit';
import { conformanceSuite } from 'mqkit/testing/conformance';
import { createToyBroker } from '../third-party/toy-log-adapter.js';

// An adapter written only against `mqkit` and `mqkit/adapter` passes the suite unchanged.
registerAdapter('toy:', createToyBroker);

conformanceSuite({
  name: 'third-party toy log',
  connect: () => connect('toy://conformance'),
  capabilities: {
    replay: true,
    brokerSideTagFilter: false,
    keyIsolation: true,
    partitions: true,
    nativeDelay: true,
    durable: false,
    acks: ['all'],
    maxMessageBytes: 1024 * 1024,
  },
  timeoutMs: 10_000,
});

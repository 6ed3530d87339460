import { inject } from 'vitest';
import { kafkaCapabilities } from '../../src/adapters/kafka/index.js';
import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'kafka',
  connect: () => connect(inject('kafkaUrl')),
  capabilities: kafkaCapabilities,
  timeoutMs: 30_000,
});

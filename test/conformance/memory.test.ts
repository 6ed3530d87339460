import { memoryCapabilities } from '../../src/adapters/memory/memory-broker.js';
import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'memory',
  connect: () => connect('memory://conformance'),
  capabilities: memoryCapabilities,
  timeoutMs: 10_000,
});

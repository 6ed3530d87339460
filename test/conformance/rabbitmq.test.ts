import { inject } from 'vitest';
import { rabbitMqCapabilities } from '../../src/adapters/rabbitmq/index.js';
import { connect } from '../../src/index.js';
import { conformanceSuite } from '../../src/testing/conformance.js';

conformanceSuite({
  name: 'rabbitmq',
  connect: () => connect(inject('amqpUrl')),
  capabilities: rabbitMqCapabilities,
});

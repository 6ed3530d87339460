/** Helpers for testing code that uses mqkit; they need no test framework. The conformance suite (vitest) is `mqkit/testing/conformance`. */
export type { MemoryBrokerOptions } from '../adapters/memory/index.js';
export { createMemoryBroker } from '../adapters/memory/index.js';
export type { MessageOutcome } from './wait-for.js';
export { Collector, testDelivery, uniqueName, waitFor } from './wait-for.js';

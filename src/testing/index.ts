export type { MemoryBrokerOptions } from '../adapters/memory/index.js';
export { createMemoryBroker } from '../adapters/memory/index.js';
export { type ConformanceOptions, conformanceSuite } from './conformance.js';
export { Collector, testDelivery, uniqueName, waitFor } from './wait-for.js';

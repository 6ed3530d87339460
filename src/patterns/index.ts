export * from './idempotency/index.js';
export * from './outbox/index.js';

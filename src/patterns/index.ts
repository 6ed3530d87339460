export * from './backlog/index.js';
export * from './idempotency/index.js';
export * from './outbox/index.js';
export * from './transactions/index.js';

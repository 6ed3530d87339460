export * from './backlog/index.js';
export * from './idempotency/index.js';

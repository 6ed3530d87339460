export * from './idempotency/index.js';

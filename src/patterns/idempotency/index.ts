export { type IdempotentOptions, idempotent } from './idempotent-handler.js';
export { MemoryIdempotencyStore } from './memory-store.js';
export {
  ensureLedger,
  type PgClientLike,
  type PgClientOf,
  type PgPoolLike,
  type PgResultLike,
  type TransactionalHandler,
  type TransactionalOptions,
  transactional,
} from './postgres-consumer.js';
export { RedisIdempotencyStore, type RedisLike } from './redis-store.js';
export type { ClaimResult, IdempotencyStore } from './store.js';

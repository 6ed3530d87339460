export { createOutbox, type Outbox, type OutboxOptions, type ParkedRow } from './outbox.js';
export {
  type OutboxRelay,
  type OutboxRelayEvents,
  type OutboxRelayOptions,
  startOutboxRelay,
} from './relay.js';
export {
  type EnsureOutboxOptions,
  ensureOutbox,
  type OutboxPoolLike,
  outboxMigration,
  type PgListenClientLike,
  type PgQueryableLike,
  type PgRowsResultLike,
} from './schema.js';

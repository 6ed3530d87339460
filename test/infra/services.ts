/**
 * Real servers for tests, one module per server:
 *
 * | server     | env variable (used as is when set)      | default when the port answers               |
 * | ---------- | --------------------------------------- | ------------------------------------------- |
 * | Kafka      | MQKIT_TEST_KAFKA_URL (`host:port[,…]`)  | none: a fresh cluster per run (startKafka)  |
 * | RabbitMQ   | MQKIT_TEST_AMQP_URL                     | amqp://guest:guest@127.0.0.1:5672           |
 * | PostgreSQL | MQKIT_TEST_PG_URL                       | postgres://postgres@127.0.0.1:5432/postgres |
 * | Redis      | MQKIT_TEST_REDIS_URL                    | redis://127.0.0.1:6379                      |
 */
export type { EnsuredService, EnsureOptions } from './ensured-service.js';
export {
  type KafkaForTests,
  type KafkaServer,
  kafkaForTests,
  type StartKafkaOptions,
  startKafka,
} from './kafka.js';
export { DEFAULT_PG_URL, ensurePostgres } from './postgres.js';
export { DEFAULT_AMQP_URL, ensureRabbitMQ } from './rabbitmq.js';
export { DEFAULT_REDIS_URL, ensureRedis } from './redis.js';

import 'vitest';

/** Values that test/infra/global-setup.ts hands to tests through `inject()`. */
declare module 'vitest' {
  export interface ProvidedContext {
    /** `kafka://127.0.0.1:port` (comma-separated host:port list for a 3-node cluster). */
    kafkaUrl: string;
    /** e.g. `amqp://guest:guest@127.0.0.1:5672`. */
    amqpUrl: string;
    /** e.g. `postgres://postgres@127.0.0.1:5432/postgres`. */
    pgUrl: string;
    /** e.g. `redis://127.0.0.1:6379`. */
    redisUrl: string;
    /** `rocketmq://127.0.0.1:<proxy gRPC port>?namesrv=127.0.0.1:<name server port>`. */
    rocketmqUrl: string;
  }
}

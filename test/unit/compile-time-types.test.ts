import { describe, expect, it } from 'vitest';
import { connect, defineTopic, type OutgoingMessage, type Producer } from '../../src/index.js';

// Compile-time checks: `tsc --noEmit -p .` (npm run typecheck) type-checks this file, and each
// `@ts-expect-error` fails the type check if the line below it ever compiles. The function
// holding them is never called; the test at the end runs the valid calls on memory.

interface Order {
  id: string;
  total: number;
}
const orders = defineTopic<Order>('orders-typed');
const users = defineTopic<{ name: string }>('users-typed');

async function _refusedByTheCompiler(producer: Producer): Promise<void> {
  // @ts-expect-error a misspelled RabbitMQ option
  await connect('amqp://127.0.0.1', { rabbitmq: { prefetchh: 1 } });
  // @ts-expect-error a misspelled Kafka option
  await connect('kafka://127.0.0.1:9092', { kafka: { clientID: 'x' } });
  // @ts-expect-error a misspelled memory option
  await connect('memory://', { memory: { partition: 2 } });
  // @ts-expect-error a body that does not fit its typed topic
  await producer.sendBatch([{ topic: orders, body: { id: 'a', total: 'one' } }]);
  await producer.sendBatch([
    { topic: orders, body: { id: 'a', total: 1 } },
    // @ts-expect-error the second message's body does not fit its own topic
    { topic: users, body: { nam: 'x' } },
  ]);
  // @ts-expect-error bodies built by map are checked too
  await producer.sendBatch([1, 2].map((n) => ({ topic: orders, body: { id: n, total: n } })));
  // @ts-expect-error an unknown message field
  await producer.sendBatch([{ topic: 'plain', body: 1, kee: 'k' }]);
  // @ts-expect-error send checks its body as well
  await producer.send({ topic: orders, body: { id: 'a' } });
}

async function acceptedByTheCompiler(producer: Producer): Promise<number> {
  const typed: OutgoingMessage<Order>[] = [{ topic: orders, body: { id: 'b', total: 2 } }];
  const untyped: readonly OutgoingMessage<unknown>[] = [{ topic: 'plain-typed', body: 'x' }];
  const results = [
    ...(await producer.sendBatch([
      { topic: orders, body: { id: 'a', total: 1 } },
      { topic: users, body: { name: 'x' } },
      { topic: 'plain-typed', body: [1, 'two'], key: 'k' },
    ])),
    ...(await producer.sendBatch(typed)),
    ...(await producer.sendBatch(untyped)),
    ...(await producer.sendBatch([1, 2].map((n) => ({ topic: orders, body: { id: String(n), total: n } })))),
  ];
  return results.length;
}

describe('typed sendBatch', () => {
  it('sends what the compiler accepts', async () => {
    const broker = await connect(`memory://compile-time-types-${process.pid}`, { rabbitmq: { prefetch: 1 } });
    expect(await acceptedByTheCompiler(broker.producer())).toBe(7);
    await broker.close();
  });
});

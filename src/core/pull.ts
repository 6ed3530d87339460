import type { MessageStream, Subscription } from './broker.js';
import { ConfigError } from './errors.js';
import type { Delivery, Handler } from './message.js';
import { isPlainObject, type SubscribeOptions } from './options.js';

/** A delivery the loop holds, with the handler call it stands for. */
interface Held<T> {
  delivery: Delivery<T>;
  ack: () => void;
  fail: (error: unknown) => void;
}

/** Thrown into handlers whose delivery the engine gave up; it settles them 'requeue'. */
const ABANDONED = new Error('the delivery was given up before the loop handled it');

/**
 * `Broker.consume` for any broker, on top of its `subscribe`: each delivery the engine hands to
 * the handler is parked until the loop asks for the next one (ack) or calls `fail` (the
 * handler throws). See `MessageStream` for the rules.
 */
export function pull<T>(
  subscribe: (options: SubscribeOptions<T>, handler: Handler<T>) => Promise<Subscription>,
  options: SubscribeOptions<T>,
): MessageStream<T> {
  if (isPlainObject(options) && 'batch' in options)
    throw new ConfigError('consume.batch', 'is not supported by consume; use subscribe with a batch handler');
  const queue: Held<T>[] = [];
  let current: Held<T> | undefined;
  let waiter: ((held: Held<T> | undefined) => void) | undefined;
  let done = false;
  let ended: Promise<void> | undefined;

  const handler: Handler<T> = (delivery) =>
    new Promise<void>((resolve, reject) => {
      // The engine aborts the signal when it gives a delivery up (the stream closing, a revoke):
      // rejecting then lets it settle the delivery 'requeue', not count a failure.
      const signal = delivery.signal;
      const abandon = () => reject(ABANDONED);
      signal.addEventListener('abort', abandon, { once: true });
      if (done) return; // closing: the abort comes
      const settled = () => signal.removeEventListener('abort', abandon);
      const held = {
        delivery,
        ack: () => {
          settled();
          resolve();
        },
        fail: (error: unknown) => {
          settled();
          reject(error);
        },
      };
      if (waiter !== undefined) {
        const wake = waiter;
        waiter = undefined;
        wake(held);
      } else queue.push(held);
    });

  const subscribed = subscribe(options, handler);
  // A failed subscribe is reported by `ready` and by the first `next`; never left unhandled.
  subscribed.then(
    // Closed from outside (its broker closed): the loop ends.
    (subscription) => (subscription as Partial<{ ended: Promise<void> }>).ended?.then(() => end()),
    () => {},
  );

  const end = (): Promise<void> => {
    ended ??= (async () => {
      done = true;
      waiter?.(undefined);
      waiter = undefined;
      current = undefined;
      queue.length = 0;
      const subscription = await subscribed.catch(() => undefined);
      // No wait: the engine aborts the held deliveries' signal at once, and their handlers
      // reject (see above), so they are settled 'requeue': not handled, delivered again.
      await subscription?.close({ timeoutMs: 0 });
    })();
    return ended;
  };

  const stream: MessageStream<T> = {
    ready: subscribed.then(() => {}),
    async next(): Promise<IteratorResult<Delivery<T>>> {
      await subscribed;
      current?.ack();
      current = undefined;
      if (done) return { done: true, value: undefined };
      let held = queue.shift();
      // Given up by the engine while queued here (its partition moved away): skip it.
      while (held?.delivery.signal.aborted) held = queue.shift();
      held ??= await new Promise<Held<T> | undefined>((resolve) => {
        waiter = resolve;
      });
      if (held === undefined) return { done: true, value: undefined };
      current = held;
      return { done: false, value: held.delivery };
    },
    async return(): Promise<IteratorResult<Delivery<T>>> {
      await end();
      return { done: true, value: undefined };
    },
    fail(delivery, error) {
      if (current === undefined || current.delivery !== delivery)
        throw new ConfigError(
          'consume.fail',
          'takes the delivery the loop got last, before asking for the next',
        );
      current.fail(error);
      current = undefined;
    },
    close: end,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  // `ready` rejects as subscribe does; a stream nobody awaits the readiness of must not crash.
  stream.ready.catch(() => {});
  return stream;
}

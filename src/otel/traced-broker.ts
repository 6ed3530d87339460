import { context, type Meter, type ObservableResult } from '@opentelemetry/api';
import type { Backlog, Broker, Capabilities, MessageStream, Producer, Subscription } from '../core/broker.js';
import type { MqEventListener, MqEventName } from '../core/events.js';
import type { BatchHandler, Delivery, Handler } from '../core/message.js';
import type { BatchSubscribeOptions, ProducerOptions, SubscribeOptions } from '../core/options.js';
import { isPlainObject } from '../core/options.js';
import { ATTR, type Attributes, METRIC } from './conventions.js';
import type { Instrumentation, ProcessScope, ProcessSpan } from './instrumentation.js';
import { quietly } from './quietly.js';
import { TracedProducer } from './traced-producer.js';

/**
 * A broker whose producers, subscriptions and pull streams are traced and measured (see
 * `instrument`). Administration passes through unchanged.
 */
export class TracedBroker implements Broker {
  private readonly unsubscribe: (() => void)[] = [];
  private closed = false;
  /** Groups read by instrumented subscriptions, for the lag gauge: `topic\0group` to open subscriptions. */
  private readonly lagged = new Map<string, { topic: string; group: string; open: number }>();
  private readonly observeLag: ((result: ObservableResult) => Promise<void>) | undefined;
  private readonly lagGauge: ReturnType<Meter['createObservableGauge']> | undefined;

  constructor(
    private readonly inner: Broker,
    private readonly instrumentation: Instrumentation,
    meter: Meter,
    lag: boolean,
  ) {
    if (lag) {
      this.lagGauge = meter.createObservableGauge(METRIC.consumerLag, {
        unit: '{message}',
        description:
          "Messages of a consumer group's partition not yet acknowledged (mqkit's name; the conventions define no lag metric yet).",
      });
      this.observeLag = (result) => this.collectLag(result);
      this.lagGauge.addCallback(this.observeLag);
    }
  }

  get kind(): string {
    return this.inner.kind;
  }

  get capabilities(): Capabilities {
    return this.inner.capabilities;
  }

  on<E extends MqEventName>(event: E, listener: MqEventListener<E>): () => void {
    return this.inner.on(event, listener);
  }

  ensureTopic(topic: string, options?: { partitions?: number }): Promise<void> {
    return this.inner.ensureTopic(topic, options);
  }

  backlog(topic: string, group: string): Promise<Backlog> {
    return this.inner.backlog(topic, group);
  }

  producer(options?: ProducerOptions): Producer {
    return new TracedProducer(this.inner.producer(options), this.instrumentation);
  }

  subscribe<T = unknown>(options: BatchSubscribeOptions<T>, handler: BatchHandler<T>): Promise<Subscription>;
  subscribe<T = unknown>(options: SubscribeOptions<T>, handler: Handler<T>): Promise<Subscription>;
  async subscribe<T>(
    options: SubscribeOptions<T> | BatchSubscribeOptions<T>,
    handler: Handler<T> | BatchHandler<T>,
  ): Promise<Subscription> {
    if (!isPlainObject(options) || typeof handler !== 'function')
      return this.inner.subscribe(options as SubscribeOptions<T>, handler as Handler<T>);
    const batch = (options as BatchSubscribeOptions<T>).batch !== undefined;
    const scope = this.instrumentation.processScope(groupOf(options), batch);
    const traced = batch
      ? this.tracedBatchHandler(handler as BatchHandler<T>, scope)
      : this.tracedHandler(handler as Handler<T>, scope);
    const subscription = await this.inner.subscribe(options as SubscribeOptions<T>, traced as Handler<T>);
    scope.group = subscription.group;
    return this.track(subscription);
  }

  consume<T = unknown>(options: SubscribeOptions<T>): MessageStream<T> {
    const stream = this.inner.consume(options);
    return new TracedStream(
      stream,
      this.instrumentation,
      isPlainObject(options) ? groupOf(options) : undefined,
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const stop of this.unsubscribe.splice(0)) stop();
    if (this.lagGauge !== undefined && this.observeLag !== undefined)
      this.lagGauge.removeCallback(this.observeLag);
    await this.inner.close();
  }

  /** Turns the engine's failure events into settle spans (see `Instrumentation`: from the first traced delivery on). */
  listenToFailures(): void {
    const instrumentation = this.instrumentation;
    this.listen('retried', (event) =>
      instrumentation.settle('retry', event, {
        [ATTR.retryDelayMs]: event.delayMs,
        [ATTR.retryVia]: event.via,
      }),
    );
    this.listen('dead-lettered', (event) =>
      instrumentation.settle(
        'dead_letter',
        event,
        event.deadLetterTopic === undefined ? undefined : { [ATTR.deadLetterTopic]: event.deadLetterTopic },
      ),
    );
  }

  /** Batch handlers' ack spans come from the engine's `handled` events (from the first traced batch on). */
  listenToAcks(): void {
    this.listen('handled', (event) => this.instrumentation.settle('ack', event));
  }

  private listen<E extends MqEventName>(event: E, listener: MqEventListener<E>): void {
    if (this.closed) return;
    this.unsubscribe.push(this.inner.on(event, listener));
  }

  /**
   * Runs each call of `handler` in its process span, active while the handler runs. Tracing
   * never changes a delivery's outcome: if the instrumentation throws (a broken SDK), the
   * handler runs untraced and its result stands.
   */
  private tracedHandler<T>(handler: Handler<T>, scope: ProcessScope): Handler<T> {
    const instrumentation = this.instrumentation;
    return (delivery) => {
      if (instrumentation.idle()) return handler(delivery);
      const process = quietly(() => instrumentation.startProcess([delivery as Delivery<unknown>], scope));
      if (process === undefined) return handler(delivery);
      return settled(
        instrumentation,
        process,
        () => context.with(process.context, handler, undefined, delivery),
        (failed) => {
          // Given up on (revoke, close timed out): the engine requeues it, with no event.
          if (delivery.signal.aborted)
            instrumentation.finished(process, delivery as Delivery<unknown>, 'nack');
          // Otherwise a success is acknowledged now; a failure's fate comes as an engine event.
          else if (!failed) instrumentation.finished(process, delivery as Delivery<unknown>, 'ack');
        },
      );
    };
  }

  /** One process span per batch, linked to the creation context of each message in it. */
  private tracedBatchHandler<T>(handler: BatchHandler<T>, scope: ProcessScope): BatchHandler<T> {
    const instrumentation = this.instrumentation;
    return (deliveries) => {
      if (instrumentation.idle()) return handler(deliveries);
      const process = quietly(() =>
        instrumentation.startProcess(deliveries as readonly Delivery<unknown>[], scope),
      );
      if (process === undefined) return handler(deliveries);
      return settled(
        instrumentation,
        process,
        () => context.with(process.context, handler, undefined, deliveries),
        () => {
          // Which of a batch the engine acknowledges only it knows: `handled` events say. A batch
          // given up on is requeued whole, with no event.
          if (deliveries[0]?.signal.aborted)
            for (const delivery of deliveries)
              instrumentation.finished(process, delivery as Delivery<unknown>, 'nack');
        },
      );
    };
  }

  private track(subscription: Subscription): Subscription {
    const key = `${subscription.topic}\u0000${subscription.group}`;
    const entry = this.lagged.get(key) ?? { topic: subscription.topic, group: subscription.group, open: 0 };
    entry.open++;
    this.lagged.set(key, entry);
    return new TrackedSubscription(subscription, () => {
      if (--entry.open === 0 && this.lagged.get(key) === entry) this.lagged.delete(key);
    });
  }

  /**
   * The lag gauge's callback: each instrumented group's backlog per partition, read from the
   * broker when the meter collects. A backlog that cannot be read is left out of this collection.
   */
  private async collectLag(result: ObservableResult): Promise<void> {
    await Promise.all(
      [...this.lagged.values()].map(async ({ topic, group }) => {
        let backlog: Backlog;
        try {
          backlog = await this.inner.backlog(topic, group);
        } catch {
          return;
        }
        for (const partition of backlog.partitions) {
          const attributes: Attributes = {
            ...this.instrumentation.system,
            [ATTR.destination]: topic,
            [ATTR.group]: group,
            [ATTR.partition]: String(partition.partition),
          };
          result.observe(partition.backlog, attributes);
        }
      }),
    );
  }
}

/** A subscription that tells its broker wrapper when it is closed (for the lag gauge). */
class TrackedSubscription implements Subscription {
  private closed = false;

  constructor(
    private readonly inner: Subscription,
    private readonly onClose: () => void,
  ) {}

  get topic(): string {
    return this.inner.topic;
  }

  get group(): string {
    return this.inner.group;
  }

  get paused(): boolean {
    return this.inner.paused;
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  /** Every call goes to the subscription (it refuses bad options, and a second call returns the first's promise). */
  close(options?: { timeoutMs?: number }): Promise<void> {
    const closing = this.inner.close(options);
    closing.then(
      () => {
        if (this.closed) return;
        this.closed = true;
        this.onClose();
      },
      () => {},
    );
    return closing;
  }

  pause(): void {
    this.inner.pause();
  }

  resume(): void {
    this.inner.resume();
  }

  setConcurrency(concurrency: number): void {
    this.inner.setConcurrency(concurrency);
  }
}

/**
 * Runs `run` (the handler in its span's context), ends the span with the outcome, then calls
 * `finished(failed)`, keeping a synchronous handler synchronous. The handler's result or error
 * is passed on as it is; an error of the instrumentation itself is dropped.
 */
function settled<R>(
  instrumentation: Instrumentation,
  process: ProcessSpan,
  run: () => R,
  finished: (failed: boolean) => void,
): R {
  const end = (error: unknown) =>
    quietly(() => {
      instrumentation.endProcess(process, error);
      finished(error !== undefined);
    });
  let result: R;
  try {
    result = run();
  } catch (error) {
    end(error ?? new Error('handler threw undefined'));
    throw error;
  }
  if (
    result !== null &&
    typeof result === 'object' &&
    typeof (result as { then?: unknown }).then === 'function'
  ) {
    return (result as unknown as PromiseLike<unknown>).then(
      (value) => {
        end(failedInBatch(value));
        return value;
      },
      (error: unknown) => {
        end(error ?? new Error('handler rejected with undefined'));
        throw error;
      },
    ) as R;
  }
  end(failedInBatch(result));
  return result;
}

/** The group a subscription names: none in broadcasting mode, where the group is made up per member. */
function groupOf(options: Record<string, unknown>): string | undefined {
  return typeof options.group === 'string' && options.mode !== 'broadcasting' ? options.group : undefined;
}

/** A batch handler's failures map, as an error for its span: the first failure's. */
function failedInBatch(value: unknown): unknown {
  if (value instanceof Map && value.size > 0)
    return value.values().next().value ?? new Error('batch failures');
  return undefined;
}

/**
 * A pull stream whose deliveries are traced: each has a process span from the moment the loop
 * gets it until the loop asks for the next one (then an `ack` span), calls `fail`, or leaves
 * the loop (then a `nack` span: the delivery is not acknowledged and comes again). The span is
 * not made active: the loop body is the caller's code, running in the caller's context.
 */
class TracedStream<T> implements MessageStream<T> {
  private current: { delivery: Delivery<T>; process: ProcessSpan } | undefined;
  private readonly scope: ProcessScope;

  constructor(
    private readonly inner: MessageStream<T>,
    private readonly instrumentation: Instrumentation,
    group: string | undefined,
  ) {
    this.scope = instrumentation.processScope(group);
  }

  get ready(): Promise<void> {
    return this.inner.ready;
  }

  async next(): Promise<IteratorResult<Delivery<T>>> {
    this.finish(undefined, 'ack');
    const result = await this.inner.next();
    if (!result.done && !this.instrumentation.idle()) {
      const delivery = result.value;
      const process = quietly(() =>
        this.instrumentation.startProcess([delivery as Delivery<unknown>], this.scope),
      );
      if (process !== undefined) this.current = { delivery, process };
    }
    return result;
  }

  fail(delivery: Delivery<T>, error: unknown): void {
    if (this.current?.delivery === delivery)
      this.finish(error ?? new Error('failed with undefined'), undefined);
    this.inner.fail(delivery, error);
  }

  async return(value?: unknown): Promise<IteratorResult<Delivery<T>>> {
    this.finish(undefined, 'nack');
    return (await this.inner.return?.(value)) ?? { done: true, value: undefined };
  }

  close(): Promise<void> {
    this.finish(undefined, 'nack');
    return this.inner.close();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the current delivery's span, with its settle span unless it failed (the engine's events tell what follows). */
  private finish(error: unknown, outcome: 'ack' | 'nack' | undefined): void {
    const current = this.current;
    if (current === undefined) return;
    this.current = undefined;
    quietly(() => {
      this.instrumentation.endProcess(current.process, error);
      if (outcome === undefined) return;
      const settled = current.delivery.signal.aborted ? 'nack' : outcome;
      this.instrumentation.finished(current.process, current.delivery as Delivery<unknown>, settled);
    });
  }
}

import type { Subscription } from './broker.js';
import { ConsumerEngine, type ConsumerEngineOptions, type ConsumerTransport } from './consumer-engine.js';
import type { ReceivedRecord } from './dispatch.js';
import type { EventHub } from './events.js';
import type { Logger } from './logger.js';

/**
 * The subscriptions of one broker connection: each starts as a `ConsumerEngine` over the
 * adapter's transport, and `closeAll` closes every one, those still starting included (their
 * `subscribe` then rejects with `ClosedError`).
 */
export class SubscriptionSet {
  private readonly live = new Set<Subscription>();

  constructor(
    /** The adapter's kind, as in `Broker.kind`. */
    private readonly broker: string,
    private readonly events: EventHub,
    private readonly logger: Logger,
  ) {}

  /** Starts `transport` under a new engine; resolves once it is ready (see `ConsumerEngine.start`). */
  start<R extends ReceivedRecord>(
    transport: ConsumerTransport<R>,
    options: Pick<ConsumerEngineOptions, 'subscription' | 'handler' | 'tagFilter' | 'report'>,
  ): Promise<Subscription> {
    const engine: ConsumerEngine<R> = new ConsumerEngine<R>({
      ...options,
      broker: this.broker,
      events: this.events,
      logger: this.logger,
      onClosed: () => this.live.delete(engine),
    });
    this.live.add(engine);
    return engine.start(transport);
  }

  /** Closes every subscription as `Subscription.close()` does, in parallel. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.live].map((s) => s.close()));
  }
}

import 'reflect-metadata';
import { inject, injectable } from 'inversify';
import { MQ_PRODUCER } from '../src/di/index.js';
import type { Producer, SendResult } from '../src/index.js';

export interface OrderPlaced {
  orderId: string;
  sku: string;
  quantity: number;
}

/**
 * A service written against the broker-neutral API only. Which broker is behind the injected
 * producer is decided by MQ_URL when the container is built, not by this code.
 */
@injectable()
export class OrderService {
  constructor(@inject(MQ_PRODUCER) private readonly producer: Producer) {}

  /** Publishes OrderPlaced keyed by order id, so every event of one order stays in order. */
  placeOrder(order: OrderPlaced): Promise<SendResult> {
    return this.producer.send({ topic: 'orders', key: order.orderId, tag: 'placed', body: order });
  }
}

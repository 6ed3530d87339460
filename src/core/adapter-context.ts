import { EventHub } from './events.js';
import { type Logger, processWarningLogger } from './logger.js';

/** What every adapter gets from `connect` besides its own options. */
export interface AdapterContext {
  /** Where the adapter logs; never absent (the default is {@link processWarningLogger}). */
  readonly logger: Logger;
  /** Where the adapter emits instrumentation events; its broker's `on` subscribes to it. */
  readonly events: EventHub;
}

/** The context of a broker made without `connect` (e.g. `createMemoryBroker` in tests). */
export function defaultAdapterContext(logger: Logger = processWarningLogger()): AdapterContext {
  return { logger, events: new EventHub(logger) };
}

import { type AdapterContext, defaultAdapterContext } from '../../core/adapter-context.js';
import type { Broker } from '../../core/broker.js';
import {
  intOption,
  intQueryParam,
  MAX_PARTITIONS,
  MAX_RETENTION,
  objectOption,
  refuseUnknownKeys,
} from '../../core/options.js';
import { MemoryBroker } from './broker.js';
import { memoryState } from './state.js';

/** Options of the embedded broker; also settable as URL query parameters (plain decimal integers). */
export interface MemoryBrokerOptions {
  /** Partitions of a topic created implicitly by a send or subscribe. Default 1; at most 4096 (`MAX_PARTITIONS`). */
  partitions?: number;
  /**
   * Consumed records kept per partition for replay before they are released. Default 10 000;
   * at most 10 000 000 (`MAX_RETENTION`).
   */
  retention?: number;
}

/**
 * Connects to the embedded broker `memory://name` (default name: `default`). Every connection
 * to one name shares one broker for the life of the process; settings apply when it is created.
 * Options win over the URL's query parameters.
 */
export async function createMemoryBroker(
  url: URL,
  given?: MemoryBrokerOptions,
  context: AdapterContext = defaultAdapterContext(),
): Promise<Broker> {
  const options: MemoryBrokerOptions = objectOption(given, 'memory');
  refuseUnknownKeys(options, ['partitions', 'retention'], 'memory.');
  const query = Object.fromEntries(url.searchParams);
  refuseUnknownKeys(query, ['partitions', 'retention'], 'memory:// query parameter ');
  const partitions =
    options.partitions === undefined
      ? intQueryParam(query.partitions, 'memory:// query parameter partitions', 1, 1, MAX_PARTITIONS)
      : intOption(options.partitions, 'memory.partitions', 1, 1, MAX_PARTITIONS);
  const retention =
    options.retention === undefined
      ? intQueryParam(query.retention, 'memory:// query parameter retention', 1, 10_000, MAX_RETENTION)
      : intOption(options.retention, 'memory.retention', 1, 10_000, MAX_RETENTION);
  const name = url.hostname || url.pathname.replace(/^\/+/, '') || 'default';
  return new MemoryBroker(memoryState(name, partitions, retention), context);
}

import type { AdapterContext } from '../../connect.js';
import type { Broker } from '../../core/broker.js';
import { ConfigError } from '../../core/errors.js';
import { processWarningLogger } from '../../core/logger.js';
import { refuseUnknownKeys } from '../../core/options.js';
import { MemoryBroker } from './memory-broker.js';
import { memoryState } from './memory-state.js';

/** Options of the embedded broker; also settable as URL query parameters. */
export interface MemoryBrokerOptions {
  /** Partitions of a topic created implicitly by a send or subscribe. Default 1. */
  partitions?: number;
  /** Consumed records kept per partition for replay before they are released. Default 10 000. */
  retention?: number;
}

/**
 * Connects to the embedded broker `memory://name` (default name: `default`). Every connection
 * to one name shares one broker for the life of the process; settings apply when it is created.
 */
export async function createMemoryBroker(
  url: URL,
  options: MemoryBrokerOptions = {},
  context: AdapterContext = { logger: processWarningLogger() },
): Promise<Broker> {
  refuseUnknownKeys(options, ['partitions', 'retention'], 'memory.');
  const query = Object.fromEntries(url.searchParams);
  refuseUnknownKeys(query, ['partitions', 'retention'], 'memory:// query parameter ');
  const partitions = positive(options.partitions ?? query.partitions, 'memory.partitions', 1);
  const retention = positive(options.retention ?? query.retention, 'memory.retention', 10_000);
  const name = url.hostname || url.pathname.replace(/^\/+/, '') || 'default';
  return new MemoryBroker(memoryState(name, partitions, retention), context.logger);
}

function positive(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new ConfigError(field, `must be an integer >= 1 (got ${String(value)})`);
  }
  return n;
}

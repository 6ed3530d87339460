/**
 * An outbox relay run as its own process (see `ChildRelay` in scenarios.ts), so it can be
 * SIGKILLed mid-stream: between publishing a batch and marking it, say. Config comes as JSON in
 * `REL_RELAY`. Writes `READY` once the relay took its first slots, `F <id>` for each row whose
 * publish failed (the per-key order analysis needs them). On SIGTERM it closes cleanly.
 */
import pg from 'pg';
import { connect } from '../../src/index.js';
import { startOutboxRelay } from '../../src/patterns/index.js';

export interface RelayChildConfig {
  relayId: string;
  url: string;
  /** `connect` options without the logger (JSON). */
  connectOptions: Record<string, unknown>;
  pgUrl: string;
  table: string;
  publishTimeoutMs: number;
}

const config = JSON.parse(process.env.REL_RELAY ?? '{}') as RelayChildConfig;
const write = (line: string) => process.stdout.write(`${line}\n`);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const pool = new pg.Pool({ connectionString: config.pgUrl, max: 4, keepAlive: true });
const broker = await connect(config.url, { ...config.connectOptions, logger: quiet });
const producer = broker.producer({ timeoutMs: config.publishTimeoutMs });
const relay = await startOutboxRelay({
  pool,
  producer,
  table: config.table,
  relayId: config.relayId,
  batchSize: 50,
  pollMs: 200,
  rebalanceMs: 250,
  backoff: { initialMs: 100, multiplier: 2, maxMs: 1000 },
  sessionTimeoutMs: 5000,
  logger: quiet,
});
relay.on('failed', (e) => write(`F ${e.id}`));
write('READY');

process.once('SIGTERM', () => {
  void (async () => {
    await relay.close();
    await producer.close();
    await broker.close();
    await pool.end();
    process.exit(0);
  })();
});

import { ConfigError } from '../core/errors.js';
import { createOutbox } from '../patterns/outbox/outbox.js';
import { UsageError } from './args.js';

/**
 * `mqkit outbox`: lists parked rows of an outbox table, or re-queues them (`--requeue ID` or
 * `--requeue all`). pg is an optional peer dependency, loaded only here.
 */
export async function outboxCommand(values: Map<string, string>, limit: number): Promise<string> {
  let outbox: ReturnType<typeof createOutbox>;
  try {
    outbox = createOutbox({ table: values.get('table') });
  } catch (error) {
    // A bad --table is a bad command line: the usage exit status, as other options.
    if (error instanceof ConfigError)
      throw new UsageError(`--table ${error.message.slice(error.field.length + 2)}`);
    throw error;
  }
  const pool = await openPgPool(values, 'outbox');
  try {
    const requeue = values.get('requeue');
    if (requeue !== undefined) {
      const n = await outbox.requeue(pool, requeue === 'all' ? undefined : [requeue]);
      if (n === 0 && requeue !== 'all')
        throw new Error(`no parked row with id ${requeue} in ${outbox.table}`);
      return `requeued ${n}`;
    }
    const failing = values.has('failing');
    const rows = await outbox.parked(pool, { limit, failing });
    const lines = rows.map(
      (r) =>
        `${r.id}  ${r.status}  topic ${r.topic}  key ${r.key ?? '-'}  attempts ${r.attempts}  checks ${r.checks}  ${r.createdAt.toISOString()}  ${(r.lastError ?? '').replace(/\s+/g, ' ').slice(0, 200)}`,
    );
    const what = failing ? 'parked or failing' : 'parked';
    return [...lines, `${what} ${rows.length}${rows.length === limit ? ' (limit reached)' : ''}`].join('\n');
  } finally {
    await pool.end();
  }
}

/** A pg pool on `--pg` (default `$DATABASE_URL`), loading the optional pg package. */
export async function openPgPool(values: Map<string, string>, command: string): Promise<import('pg').Pool> {
  const url = values.get('pg') ?? (process.env.DATABASE_URL || undefined);
  if (url === undefined) throw new UsageError(`${command} needs --pg URL (or DATABASE_URL)`);
  let pg: typeof import('pg');
  try {
    pg = await import('pg');
  } catch (error) {
    throw new Error(`${command} needs the pg package: npm install pg`, { cause: error });
  }
  const Pool = pg.default?.Pool ?? pg.Pool;
  return new Pool({ connectionString: url, max: 10 });
}

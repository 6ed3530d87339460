import { Redis } from 'ioredis';
import pg from 'pg';
import { type CheckResult, check, violations } from './checker.js';
import { SCENARIOS, type Scenario } from './scenarios.js';
import { BROKERS, type BrokerName, startTarget, type Target } from './targets.js';
import { prepareStores, type Stores } from './workload.js';

export interface MatrixOptions {
  seeds: readonly number[];
  /** Scenario ids; default all. */
  scenarios?: readonly string[];
  /** Brokers; default all. */
  brokers?: readonly BrokerName[];
  /** Message count multiplier; default 1 (the full matrix). */
  scale?: number;
  redisUrl: string;
  pgUrl: string;
  log?: (line: string) => void;
}

/** One (scenario, broker, seed) run. */
export interface RunResult {
  scenario: string;
  broker: BrokerName;
  seed: number;
  ms: number;
  result: CheckResult | undefined;
  /** Scenario-specific counters that must be 0. */
  extra: Record<string, number>;
  /** Broken invariants, one line each (an exception of the run is one too). */
  violations: string[];
  notes: string[];
}

/** Every scenario on every broker it means something on, over every seed; one broker at a time. */
export async function runMatrix(options: MatrixOptions): Promise<RunResult[]> {
  const log = options.log ?? (() => {});
  const scenarios = SCENARIOS.filter(
    (s) => options.scenarios === undefined || options.scenarios.includes(s.id),
  );
  const brokers = BROKERS.filter((b) => options.brokers === undefined || options.brokers.includes(b));
  const redis = new Redis(options.redisUrl, { enableAutoPipelining: true, lazyConnect: true });
  await redis.connect();
  const pool = new pg.Pool({ connectionString: options.pgUrl, max: 8 });
  const stores: Stores = { redis, pool, redisUrl: options.redisUrl, pgUrl: options.pgUrl };
  const results: RunResult[] = [];
  try {
    await prepareStores(stores);
    for (const broker of brokers) {
      const planned = scenarios.filter((s) => s.brokers.includes(broker));
      if (planned.length === 0) continue;
      const t0 = Date.now();
      const target = await startTarget(broker, log);
      log(`${broker}: ready in ${Date.now() - t0} ms`);
      try {
        for (const scenario of planned) {
          for (const seed of options.seeds) {
            results.push(await runOne(scenario, target, seed, options.scale ?? 1, stores, log));
          }
        }
      } finally {
        await target.close();
      }
    }
  } finally {
    redis.disconnect();
    await pool.end();
  }
  return results;
}

async function runOne(
  scenario: Scenario,
  target: Target,
  seed: number,
  scale: number,
  stores: Stores,
  log: (line: string) => void,
): Promise<RunResult> {
  log(`${scenario.id} on ${target.name}, seed ${seed}`);
  const t0 = Date.now();
  // The in-process clients' warnings and errors (see quietLogger), this run's only.
  const logged = (target.connectOptions as { logger?: { lines?: string[] } }).logger?.lines;
  if (logged) logged.length = 0;
  try {
    const out = await scenario.run({ target, stores, seed, scale, log });
    const result = check(out.ledger, out.check);
    // For a lost message on Kafka: is it in the log (the consumer skipped it) or not (never stored)?
    if (result.lost > 0 && target.audit) {
      const lost = [...out.ledger.confirmed.values()]
        .map((c) => c.id)
        .filter((id) => !out.ledger.sent.get(id)?.poison && !out.ledger.deliveries.some((d) => d.id === id));
      const stored = await target.audit(`rel-${lost[0]?.split('-')[0]}`).catch(() => undefined);
      for (const id of lost.slice(0, 10)) {
        const sent = out.ledger.sent.get(id);
        const confirmed = out.ledger.confirmed.get(id);
        const refusals = out.ledger.refused
          .filter((r) => r.id === id)
          .map((r) => `${r.code} after ${r.ms} ms`);
        out.notes.push(
          `lost ${id} (key ${sent?.key} seq ${sent?.seq}): sent at +${(sent?.at ?? 0) - t0} ms, confirmed at +${(confirmed?.at ?? 0) - t0} ms${refusals.length ? ` after refusals ${refusals.join(', ')}` : ''}; in the log: ${stored === undefined ? 'audit failed' : (stored.get(id) ?? 'NO')} (${stored?.size ?? 0} records read)`,
        );
      }
      const faults = out.ledger.faults.map((f) => `${f.name} at +${f.start - t0}..${f.end - t0} ms`);
      out.notes.push(`faults: ${faults.join(', ')}`);
    }
    // For a duplicate effect, what happened to that message: who got it when, and the faults.
    for (const storeId of result.duplicateEffectIds.slice(0, 3)) {
      const id = storeId.slice(storeId.indexOf(':') + 1);
      const seen = out.ledger.deliveries
        .filter((d) => d.id === id)
        .map((d) => `${d.consumer}/${d.group} attempt ${d.attempt} at +${d.at - t0} ms`);
      const faults = out.ledger.faults.map((f) => `${f.name} at +${f.start - t0}..${f.end - t0} ms`);
      out.notes.push(
        `duplicate effect ${storeId}: delivered ${seen.join(', ')}; faults: ${faults.join(', ')}`,
      );
    }
    const broken = [
      ...violations(result),
      ...Object.entries(out.extra)
        .filter(([, n]) => n !== 0)
        .map(([name, n]) => `${name}=${n}`),
    ];
    const line = `  ${result.messages} messages, ${result.confirmed} confirmed, lost ${result.lost}, dup deliveries ${result.duplicateDeliveries}, dup effects ${result.duplicateEffects}, order ${result.orderViolations}, recover ${result.maxRecoveryMs} ms, ${Date.now() - t0} ms${broken.length ? ` FAILED: ${broken.join('; ')}` : ''}`;
    log(line);
    if (broken.length > 0 && logged?.length)
      out.notes.push(...logged.slice(-20).map((l) => `logged: ${l.slice(0, 400)}`));
    if (broken.length > 0) for (const note of out.notes) log(`    ${note}`);
    return {
      scenario: scenario.id,
      broker: target.name,
      seed,
      ms: Date.now() - t0,
      result,
      extra: out.extra,
      violations: broken,
      notes: out.notes,
    };
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(`  ERROR: ${message}`);
    return {
      scenario: scenario.id,
      broker: target.name,
      seed,
      ms: Date.now() - t0,
      result: undefined,
      extra: {},
      violations: [`run failed: ${message.split('\n')[0]}`],
      notes: [],
    };
  }
}

/** One row of the table: a scenario on a broker, summed over seeds. */
export interface SummaryRow {
  scenario: string;
  broker: BrokerName;
  seeds: number;
  messages: number;
  confirmed: number;
  lost: number;
  unexpected: number;
  duplicateDeliveries: number;
  duplicateEffects: number;
  orderViolations: number;
  unsettled: number;
  faults: number;
  /** Largest time to recover over the seeds' faults, ms. */
  maxRecoveryMs: number;
  /** Runs with a broken invariant. */
  failed: number;
}

export function summarize(results: readonly RunResult[]): SummaryRow[] {
  const rows = new Map<string, SummaryRow>();
  for (const r of results) {
    const k = `${r.scenario}\u0000${r.broker}`;
    let row = rows.get(k);
    if (row === undefined) {
      row = {
        scenario: r.scenario,
        broker: r.broker,
        seeds: 0,
        messages: 0,
        confirmed: 0,
        lost: 0,
        unexpected: 0,
        duplicateDeliveries: 0,
        duplicateEffects: 0,
        orderViolations: 0,
        unsettled: 0,
        faults: 0,
        maxRecoveryMs: 0,
        failed: 0,
      };
      rows.set(k, row);
    }
    row.seeds++;
    if (r.violations.length > 0) row.failed++;
    const c = r.result;
    if (c === undefined) continue;
    row.messages += c.messages;
    row.confirmed += c.confirmed;
    row.lost += c.lost;
    row.unexpected += c.unexpected;
    row.duplicateDeliveries += c.duplicateDeliveries;
    row.duplicateEffects += c.duplicateEffects;
    row.orderViolations += c.orderViolations;
    row.unsettled += c.unsettled;
    row.faults += c.recoveries.length;
    row.maxRecoveryMs = Math.max(row.maxRecoveryMs, c.maxRecoveryMs);
  }
  return [...rows.values()];
}

/** The table printed at the end of a run. */
export function formatTable(rows: readonly SummaryRow[]): string {
  const header = [
    'scenario',
    'broker',
    'seeds',
    'messages',
    'confirmed',
    'lost',
    'unexpected',
    'dup deliv',
    'dup effects',
    'order viol',
    'unsettled',
    'faults',
    'max recover ms',
    'failed runs',
  ];
  const lines = rows.map((r) => [
    r.scenario,
    r.broker,
    String(r.seeds),
    String(r.messages),
    String(r.confirmed),
    String(r.lost),
    String(r.unexpected),
    String(r.duplicateDeliveries),
    String(r.duplicateEffects),
    String(r.orderViolations),
    String(r.unsettled),
    String(r.faults),
    String(r.maxRecoveryMs),
    String(r.failed),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

import type { Admin } from '../../core/broker.js';
import { ConfigError } from '../../core/errors.js';
import { Listeners } from '../../core/events.js';
import { type Logger, safeLog, silentLogger } from '../../core/logger.js';
import {
  groupName,
  intOption,
  isPlainObject,
  MAX_TIMER_MS,
  refuseUnknownKeys,
  userTopicName,
} from '../../core/options.js';
import { HEALTH_ORDER, type PartitionHealth, partitionHealth, worseHealth } from './health.js';
import { type FullSample, type LagSource, partitionRates } from './rates.js';

/** One partition (or partition queue) in a {@link BacklogReport}. */
export interface PartitionReport {
  partition: number;
  /** Messages behind: ready plus in flight where the broker counts both. */
  backlog: number;
  /** The group's committed offset, where the broker has offsets (see `Backlog`). */
  committed: string | undefined;
  /** The partition's end offset, where the broker has offsets. */
  end: string | undefined;
  /** Of `backlog`, waiting to be delivered; undefined where the broker does not tell them apart. */
  ready: number | undefined;
  /** Of `backlog`, delivered and not yet acknowledged; where the broker tells (RabbitMQ with `managementUrl`). */
  inFlight: number | undefined;
  /** Consumers attached, where the broker tells (see `Backlog`). */
  consumers: number | undefined;
  /** Messages stored per second (Kafka, memory). */
  rateIn: number | undefined;
  /** Messages committed per second (Kafka, memory). */
  rateOut: number | undefined;
  /** Backlog change per second; negative while draining. Every broker. */
  netRate: number | undefined;
  /** Age of the oldest unconsumed message in seconds; see `lagSource`. */
  lagSeconds: number | undefined;
  /** 'measured' (memory: the message's store time) or 'estimated' (Kafka, RabbitMQ: from the history). */
  lagSource: LagSource | undefined;
  /** Seconds to drain at the current rates; undefined while not shrinking. */
  drainSeconds: number | undefined;
  health: PartitionHealth;
}

/** What one sample of the monitor saw, with what the history adds. */
export interface BacklogReport {
  topic: string;
  group: string;
  /** When the sample was taken (its answer came), ms since the epoch. */
  at: number;
  /**
   * When the sample was asked for: what happened before is in it, what happened between this
   * and `at` may or may not be.
   */
  requestedAt: number;
  /** Sum of the partitions' backlogs. */
  total: number;
  /** Sums over partitions; undefined when no partition reports it. */
  inFlight: number | undefined;
  /**
   * Sum of the partitions' `consumers`: consumer-partition assignments, not distinct members
   * (one member holding 4 partitions counts 4); no broker names members the same way.
   */
  consumers: number | undefined;
  rateIn: number | undefined;
  rateOut: number | undefined;
  netRate: number | undefined;
  /** The largest partition lag in seconds. */
  lagSeconds: number | undefined;
  /** The longest partition drain time; undefined while any non-empty partition is not shrinking. */
  drainSeconds: number | undefined;
  /** The worst partition's verdict. */
  health: PartitionHealth;
  partitions: PartitionReport[];
}

/** The part of an OpenTelemetry `ObservableResult` the monitor uses. */
export interface ObservableResultLike {
  observe(value: number, attributes?: Record<string, string | number>): void;
}

/** The part of an OpenTelemetry `ObservableGauge` the monitor uses. */
export interface ObservableGaugeLike {
  addCallback(callback: (result: ObservableResultLike) => void): void;
  removeCallback?(callback: (result: ObservableResultLike) => void): void;
}

/**
 * The part of an OpenTelemetry `Meter` the monitor uses: pass `metrics.getMeter('...')` of
 * `@opentelemetry/api`, or anything with this shape.
 */
export interface MeterLike {
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): ObservableGaugeLike;
}

/**
 * Name of the lag gauge the monitor publishes (no OpenTelemetry semantic convention exists for
 * it yet). mqkit/otel's `instrument()` publishes a gauge of the same name and attributes: enable
 * only one of them on a meter (`instrument(broker, { lag: false })` where a monitor publishes it).
 */
export const LAG_METRIC = 'messaging.consumer.lag';

/** Name of the health gauge the monitor publishes: the verdict per partition as {@link HEALTH_CODE}. */
export const HEALTH_METRIC = 'mqkit.backlog.health';

/**
 * The health gauge's value per verdict, its place in {@link HEALTH_ORDER} (higher is worse):
 * ok 0, unknown 1, catching-up 2, falling-behind 3, rewound 4, stalled 5, stopped 6.
 */
export const HEALTH_CODE: Readonly<Record<PartitionHealth, number>> = Object.fromEntries(
  HEALTH_ORDER.map((health, code) => [health, code]),
) as Record<PartitionHealth, number>;

export interface BacklogMonitorOptions {
  topic: string;
  group: string;
  /** Time between samples. Default 5 000 ms; 10 ms to {@link MAX_TIMER_MS}. */
  intervalMs?: number;
  /**
   * Samples kept per partition: the history rates and verdicts come from. Default 10; 3 to
   * 10 000. A window spans `window × intervalMs`.
   */
  window?: number;
  /**
   * Publishes two gauges, one point per partition each, with attributes
   * `messaging.destination.name` (topic), `messaging.consumer.group.name` and
   * `messaging.destination.partition.id`: {@link LAG_METRIC} (unit `{message}`), the last
   * sampled backlog, and {@link HEALTH_METRIC} (unit `1`), the verdict as {@link HEALTH_CODE}.
   * The verdict is a value, not an attribute, so a change makes no new series. Do not also
   * publish mqkit/otel's lag gauge on the same meter (same name): `instrument(broker, { lag: false })`.
   */
  meter?: MeterLike;
  /** Where sampling failures are logged (at `warn`) besides the `error` event. Default: none. */
  logger?: Logger;
}

/** Events of a {@link BacklogMonitor}. */
export interface BacklogMonitorEvents {
  /** After each sample. */
  sample: BacklogReport;
  /** A partition's verdict changed (the first verdict counts as a change from 'unknown'). */
  health: { partition: number; from: PartitionHealth; to: PartitionHealth; report: BacklogReport };
  /** A sample failed (the broker did not answer); sampling goes on at the next interval. */
  error: { error: unknown };
}

const ALLOWED = ['topic', 'group', 'intervalMs', 'window', 'meter', 'logger'];

/**
 * Samples `Admin.backlog(topic, group)` every `intervalMs` and keeps the last `window` samples
 * per partition, from which it derives rates, lag in seconds, time to drain and a health
 * verdict (see `partitionHealth`). Broker-neutral: it uses `Admin` only, so it runs in any
 * process (a consumer, a sidecar, the CLI).
 *
 * Sampling error (how `backlog` relates to "sent minus handled" at the same instant):
 * memory and Kafka count from the committed position, so they overstate by what was handled
 * and not committed yet (Kafka commits every `commitIntervalMs`); RabbitMQ counts ready
 * messages (exact, from a passive declare) and understates by the deliveries consumers hold
 * unless `managementUrl` is set (then the management plugin's sample, up to 5 s old, adds them).
 *
 * Samples never overlap: a slow broker stretches the interval. Listeners run synchronously
 * and must not throw (a throwing listener is logged and ignored).
 */
export class BacklogMonitor {
  readonly topic: string;
  readonly group: string;
  readonly intervalMs: number;
  readonly window: number;
  private readonly history = new Map<number, FullSample[]>();
  private readonly verdicts = new Map<number, PartitionHealth>();
  private readonly events: Listeners<BacklogMonitorEvents>;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<BacklogReport | undefined> | undefined;
  private stopped = true;
  /** Incremented by each start(): only the timer chain of the current one reschedules itself. */
  private generation = 0;
  private gauges: { gauge: ObservableGaugeLike; callback: (r: ObservableResultLike) => void }[] = [];
  private last: BacklogReport | undefined;

  constructor(
    private readonly admin: Admin,
    options: BacklogMonitorOptions,
  ) {
    if (!isPlainObject(options)) throw new ConfigError('backlogMonitor', 'must be an options object');
    refuseUnknownKeys(options, ALLOWED, 'backlogMonitor.');
    this.topic = userTopicName(options.topic, 'backlogMonitor.topic');
    this.group = groupName(options.group, 'backlogMonitor.group');
    this.intervalMs = intOption(options.intervalMs, 'backlogMonitor.intervalMs', 10, 5000, MAX_TIMER_MS);
    this.window = intOption(options.window, 'backlogMonitor.window', 3, 10, 10_000);
    if (options.meter !== undefined && typeof options.meter?.createObservableGauge !== 'function') {
      throw new ConfigError(
        'backlogMonitor.meter',
        'must have createObservableGauge (an OpenTelemetry Meter)',
      );
    }
    this.logger = options.logger ?? silentLogger;
    this.events = new Listeners(this.logger, "the backlog monitor's");
    if (options.meter !== undefined) {
      const publish = (
        name: string,
        description: string,
        unit: string,
        value: (p: PartitionReport) => number,
      ) => {
        const gauge = (options.meter as MeterLike).createObservableGauge(name, { description, unit });
        const callback = (result: ObservableResultLike) => {
          for (const p of this.last?.partitions ?? []) {
            result.observe(value(p), {
              'messaging.destination.name': this.topic,
              'messaging.consumer.group.name': this.group,
              'messaging.destination.partition.id': String(p.partition),
            });
          }
        };
        gauge.addCallback(callback);
        this.gauges.push({ gauge, callback });
      };
      publish(
        LAG_METRIC,
        'Messages of a consumer group not yet acknowledged, per partition (mqkit backlog monitor)',
        '{message}',
        (p) => p.backlog,
      );
      publish(
        HEALTH_METRIC,
        'Backlog health verdict per partition: 0 ok, 1 unknown, 2 catching-up, 3 falling-behind, 4 rewound, 5 stalled, 6 stopped',
        '1',
        (p) => HEALTH_CODE[p.health],
      );
    }
  }

  /** The last report, or undefined before the first sample. */
  get latest(): BacklogReport | undefined {
    return this.last;
  }

  /** Starts sampling (the first sample at once). Idempotent. Returns the monitor. */
  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.tick(++this.generation);
    return this;
  }

  /**
   * Takes one sample now (also while stopped) and resolves with its report; rejects with the
   * broker's error. A sample already in flight is awaited instead of starting another.
   */
  async sample(): Promise<BacklogReport> {
    if (this.running !== undefined) {
      const report = await this.running;
      if (report !== undefined) return report;
    }
    return this.take();
  }

  /** Stops sampling and unregisters the gauge; waits for a sample in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const { gauge, callback } of this.gauges.splice(0)) gauge.removeCallback?.(callback);
    await this.running;
  }

  /** Calls `listener` for each `event` until the returned function is called. */
  on<E extends keyof BacklogMonitorEvents>(
    event: E,
    listener: (payload: BacklogMonitorEvents[E]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  private emit<E extends keyof BacklogMonitorEvents>(event: E, payload: BacklogMonitorEvents[E]): void {
    this.events.emit(event, payload);
  }

  private tick(generation: number): void {
    if (this.stopped || generation !== this.generation) return;
    // A sample in flight (one of `sample()`, or of a chain a quick stop() and start() left) is
    // this tick's sample: samples never overlap, so they reach the history in order.
    const running = this.running;
    (running ?? this.take())
      .catch((error: unknown) => {
        safeLog(
          this.logger,
          'warn',
          { err: error, topic: this.topic, group: this.group },
          'backlog sample failed',
        );
        this.emit('error', { error });
      })
      .finally(() => {
        if (!this.stopped && generation === this.generation) {
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.tick(generation), this.intervalMs);
        }
      });
  }

  private take(): Promise<BacklogReport> {
    // One backlog request at a time: a sample taken while another is in flight starts after
    // it settled, so answers cannot arrive out of order (an older position after a newer one
    // would read as a rewind). Promise.resolve: an adapter that throws synchronously (closed)
    // still rejects.
    const before = this.running ?? Promise.resolve(undefined);
    let requestedAt = Date.now();
    const run = before
      .then(() => {
        requestedAt = Date.now();
        return this.admin.backlog(this.topic, this.group);
      })
      .then((backlog) => {
        const at = Date.now();
        const seen = new Set<number>();
        const partitions: PartitionReport[] = [];
        for (const p of backlog.partitions) {
          seen.add(p.partition);
          const samples = this.history.get(p.partition) ?? [];
          samples.push({
            at,
            backlog: p.backlog,
            committed: p.committed === undefined ? undefined : Number(p.committed),
            end: p.end === undefined ? undefined : Number(p.end),
            consumers: p.consumers,
            inFlight: p.inFlight,
            oldestTimestamp: p.oldestTimestamp,
          });
          if (samples.length > this.window) samples.splice(0, samples.length - this.window);
          this.history.set(p.partition, samples);
          const rates = partitionRates(samples);
          partitions.push({
            partition: p.partition,
            backlog: p.backlog,
            committed: p.committed,
            end: p.end,
            ready: p.inFlight === undefined ? undefined : p.backlog - p.inFlight,
            inFlight: p.inFlight,
            consumers: p.consumers,
            ...rates,
            health: partitionHealth(samples),
          });
        }
        for (const partition of [...this.history.keys()])
          if (!seen.has(partition)) this.history.delete(partition);
        const report = summarize(this.topic, this.group, requestedAt, at, partitions);
        this.last = report;
        this.emit('sample', report);
        for (const p of partitions) {
          const from = this.verdicts.get(p.partition) ?? 'unknown';
          this.verdicts.set(p.partition, p.health);
          if (from !== p.health) this.emit('health', { partition: p.partition, from, to: p.health, report });
        }
        return report;
      });
    const tracked = run.then(
      (r) => r,
      () => undefined,
    );
    this.running = tracked;
    void tracked.finally(() => {
      if (this.running === tracked) this.running = undefined;
    });
    return run;
  }
}

function sum(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : known.reduce((a, b) => a + b, 0);
}

function summarize(
  topic: string,
  group: string,
  requestedAt: number,
  at: number,
  partitions: PartitionReport[],
): BacklogReport {
  const lags = partitions.map((p) => p.lagSeconds).filter((v): v is number => v !== undefined);
  const draining = partitions.filter((p) => p.backlog > 0);
  return {
    topic,
    group,
    requestedAt,
    at,
    total: partitions.reduce((s, p) => s + p.backlog, 0),
    inFlight: sum(partitions.map((p) => p.inFlight)),
    consumers: sum(partitions.map((p) => p.consumers)),
    rateIn: sum(partitions.map((p) => p.rateIn)),
    rateOut: sum(partitions.map((p) => p.rateOut)),
    netRate: sum(partitions.map((p) => p.netRate)),
    lagSeconds: lags.length === 0 ? undefined : Math.max(...lags),
    drainSeconds: draining.every((p) => p.drainSeconds !== undefined)
      ? Math.max(0, ...draining.map((p) => p.drainSeconds as number))
      : undefined,
    health: partitions.reduce<PartitionHealth>((w, p) => worseHealth(w, p.health), 'ok'),
    partitions,
  };
}

/** Creates a {@link BacklogMonitor} and starts it. */
export function monitorBacklog(admin: Admin, options: BacklogMonitorOptions): BacklogMonitor {
  return new BacklogMonitor(admin, options).start();
}

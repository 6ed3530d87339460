import type { Broker } from '../core/broker.js';
import { isMqError } from '../core/errors.js';
import { BacklogMonitor, type BacklogReport } from '../patterns/backlog/index.js';

/** How `mqkit lag` runs: samples `samples` times, `intervalMs` apart. */
export interface LagOptions {
  topic: string;
  group: string;
  intervalMs: number;
  /** Samples to take; the verdict needs 3 (one gives the backlog alone). Infinity: until `signal`. */
  samples: number;
  watch: boolean;
  json: boolean;
}

/** Where a watching `lag` writes each frame as it comes; `tty` redraws in place. */
export interface LagOutput {
  write(text: string): void;
  readonly tty: boolean;
  /** Ends a watch (Ctrl-C). */
  readonly signal?: AbortSignal;
}

const fixed = (v: number | undefined, digits = 1) => (v === undefined ? '-' : v.toFixed(digits));

/** The table `mqkit lag` prints for one report: a header line, one row per partition, a total. */
export function formatLag(report: BacklogReport, kind: string): string {
  const head = [
    'partition',
    'backlog',
    'ready',
    'in-flight',
    'consumers',
    'in/s',
    'out/s',
    'lag-s',
    'drain-s',
    'health',
  ];
  const rows = report.partitions.map((p) => [
    String(p.partition),
    String(p.backlog),
    p.ready === undefined ? '-' : String(p.ready),
    p.inFlight === undefined ? '-' : String(p.inFlight),
    p.consumers === undefined ? '-' : String(p.consumers),
    fixed(p.rateIn),
    fixed(p.rateOut),
    // "~" marks an estimate from the history (see BacklogMonitor).
    p.lagSeconds === undefined ? '-' : `${p.lagSource === 'estimated' ? '~' : ''}${fixed(p.lagSeconds)}`,
    fixed(p.drainSeconds),
    p.health,
  ]);
  rows.push([
    'total',
    String(report.total),
    report.inFlight === undefined ? '-' : String(report.total - report.inFlight),
    report.inFlight === undefined ? '-' : String(report.inFlight),
    report.consumers === undefined ? '-' : String(report.consumers),
    fixed(report.rateIn),
    fixed(report.rateOut),
    fixed(report.lagSeconds),
    fixed(report.drainSeconds),
    report.health,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  const title = `${kind} topic ${report.topic}  group ${report.group}  at ${new Date(report.at).toISOString()}`;
  return [title, line(head), ...rows.map(line)].join('\n');
}

/**
 * Samples the backlog and renders it. Without `watch`, returns the last frame (or report, as
 * JSON). With `watch`, writes each frame to `out` as it comes (redrawn in place on a terminal,
 * one after another otherwise; one JSON object per line with `json`) and returns ''; without
 * `out`, returns every frame (finite `samples` only). A watch keeps watching when a sample after
 * the first fails: that frame is one line, `sample failed: <error>` (with `json`,
 * `{"error":"..."}`); a failed first sample ends the command (exit 1).
 */
export async function lagCommand(broker: Broker, options: LagOptions, out?: LagOutput): Promise<string> {
  const monitor = new BacklogMonitor(broker, {
    topic: options.topic,
    group: options.group,
    intervalMs: options.intervalMs,
    window: 10,
  });
  const render = (r: BacklogReport) => (options.json ? JSON.stringify(r) : formatLag(r, broker.kind));
  let previousLines = 0;
  let last: BacklogReport | undefined;
  const frames: string[] = [];
  for (let i = 0; i < options.samples; i++) {
    if (i > 0 && !(await pause(options.intervalMs, out?.signal))) break;
    let frame: string;
    if (i > 0 && options.watch) {
      try {
        last = await monitor.sample();
        frame = render(last);
      } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        const code = isMqError(error) ? ` [${error.code}]` : '';
        const message = `sample failed: ${text.replace(/\s*\n\s*/g, ' ')}${code}`;
        frame = options.json ? JSON.stringify({ error: message }) : message;
      }
    } else {
      last = await monitor.sample();
      if (i === 0) check(broker, last, options);
      frame = render(last);
    }
    if (options.watch) {
      if (out === undefined) {
        frames.push(frame);
        continue;
      }
      if (out.tty && !options.json) {
        // Up over the previous frame and clear to the end of the screen: a redraw in place.
        out.write(`${previousLines > 0 ? `\x1b[${previousLines}F\x1b[J` : ''}${frame}\n`);
        previousLines = frame.split('\n').length;
      } else out.write(`${frame}\n${options.json ? '' : '\n'}`);
    }
  }
  await monitor.stop();
  if (options.watch) return out === undefined ? frames.join(options.json ? '\n' : '\n\n') : '';
  return render(last as BacklogReport);
}

/** Waits `ms`; false when `signal` aborted first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve(true);
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** Refuses a topic or group the broker does not know, instead of printing a backlog of 0. */
function check(broker: Broker, report: BacklogReport, options: LagOptions): void {
  const { topic, group } = options;
  if (report.partitions.length === 0) {
    // Kafka and memory report a missing topic with no partitions; RabbitMQ a topic without
    // queues of this group (the group's queues are its only trace there).
    throw new Error(
      broker.kind === 'rabbitmq'
        ? `no queue of group ${group} on topic ${topic}: unknown topic, or a group that never subscribed to it`
        : `unknown topic ${topic}`,
    );
  }
  if (broker.kind !== 'rabbitmq' && report.partitions.every((p) => p.committed === undefined)) {
    throw new Error(
      `group ${group} has no committed position on topic ${topic}: unknown group, or one that has committed nothing yet`,
    );
  }
}

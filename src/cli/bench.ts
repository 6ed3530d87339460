import { performance } from 'node:perf_hooks';
import type { Broker, Producer, Subscription } from '../core/broker.js';
import { bytesCodec, defineTopic } from '../core/codec.js';
import { LatencyHistogram, type LatencySummary } from './bench/histogram.js';
import { keyOf, Verifier } from './bench/verify.js';
import { type Workload, workloadDefaults } from './bench/workload.js';

/** One measured run of one library on one broker. Rates are per second; latencies in ms. */
export interface BenchResult {
  /** e.g. `mqkit kafka`, `raw kafkajs`. */
  label: string;
  /** `mqkit`, `raw kafkajs`, `raw amqplib`, or a peer's name. */
  library: string;
  /** Broker kind: `memory`, `kafka`, `rabbitmq`. */
  broker: string;
  workload: string;
  size: number;
  /** Messages the producers tried to send (acknowledged or not). */
  sent: number;
  /**
   * Messages whose send the broker refused or that failed in the client (a timeout included).
   * Not counted in `lost`, even if never delivered.
   */
  refused: number;
  /** The first send error's message, as the client put it. */
  sendError?: string;
  /**
   * Why sending stopped early: nothing was delivered (and no send settled) for `drainTimeoutS`
   * while producers waited on the broker; what was sent but not delivered counts as lost.
   */
  stalled?: string;
  /** Distinct messages delivered. */
  received: number;
  /**
   * Sent, not refused (acknowledged, or a send still pending when the run ended) and never
   * delivered.
   */
  lost: number;
  duplicated: number;
  /** Per producer and key, deliveries below the highest sequence already delivered. */
  outOfOrder: number;
  /** Sent per second, first send to last acknowledgement. */
  produceRate: number;
  produceMBps: number;
  /** Distinct deliveries per second, consumption start (first send, or after the backlog) to last delivery. */
  endToEndRate: number;
  endToEndMBps: number;
  /** Intended send time (the schedule at a target rate) to handler. */
  endToEnd: LatencySummary;
  /** Intended send time to the broker's acknowledgement of the batch. */
  publish: LatencySummary;
  /** Client CPU (user + system) of this process over the run, per delivered message. */
  cpuUsPerMessage: number;
  /**
   * This run's peak: the highest resident set size of this process sampled every 100 ms from
   * the start to the end of the run, not the process's high-water mark (`maxRSS`, which an
   * earlier run may have set). Each run starts after a garbage collection when node runs with
   * `--expose-gc`; without it, garbage of earlier runs can still count.
   */
  peakRssMB: number;
  seconds: number;
  /**
   * A broker's own tool (`--ceiling`): its figures are its own report; nothing was verified
   * and its CPU and memory were not measured (another process).
   */
  external?: boolean;
}

/** A workload plus what names one run. */
export type BenchOptions = Workload & {
  label: string;
  /**
   * Reuse a topic across runs; default a new topic per run. The consumer group is named after
   * the topic (`bench-<topic>`), so runs on a reused topic resume the same group, and runs on
   * different topics never share one (concurrent runs on a cluster do not rebalance each other).
   */
  topic?: string;
};

export const benchDefaults: Workload = workloadDefaults;

/** One message of a benchmark batch. */
export interface BenchMessage {
  body: Buffer;
  key: string | undefined;
}

/**
 * What a benchmark drives: mqkit, a raw client or a peer library. `runWorkload` is the one
 * workload every run goes through, so they differ only in their transport.
 */
export interface BenchTransport {
  /** Starts consuming, resolving once ready; calls `received(body)` after each message is handled. */
  consume(received: (body: Buffer) => void): Promise<void>;
  /** Sends one batch for producer `producer` (0-based) and resolves once the broker acknowledged it. */
  send(batch: BenchMessage[], producer: number): Promise<void>;
  close(): Promise<void>;
}

/** Progress of a run, for a progress bar: messages sent and delivered of `total` (0 when timed). */
export type ProgressListener = (sent: number, received: number, total: number) => void;

/** What each run carries besides the workload. */
export interface RunContext {
  library: string;
  broker: string;
  onProgress?: ProgressListener;
}

/**
 * Runs a workload over a transport in this process and measures it. Each body is
 * `[intended send time f64][producer u32][sequence u32]` then filler to `size`; the consumer
 * checks every delivery against it (see `Verifier`). At a target rate each producer sends on a
 * fixed schedule and latency counts from the scheduled time, so a stalled broker shows as
 * latency, not as a slower schedule (no coordinated omission). Sending ends after `messages`
 * (or `durationS`: at a target rate, after the messages scheduled within it, however late they
 * go out, unless `maxLag` still holds them at the end); then the run waits for the missing until `drainTimeoutS` pass without a
 * delivery, and counts what never came as lost.
 *
 * A run always ends: producers held by `maxLag` (acknowledged but undelivered; failed sends do
 * not count) re-check every 100 ms and stop at the end of `durationS`; and once producers wait
 * on the broker (lag or a pending send) with no delivery and no send settling for
 * `drainTimeoutS`, sending stops, the drain is skipped (it already waited that long) and the
 * rest counts as lost (`stalled` says so). A send that never settles is left behind.
 */
export async function runWorkload(
  options: BenchOptions,
  transport: BenchTransport,
  context: RunContext = { library: 'mqkit', broker: 'unknown' },
): Promise<BenchResult> {
  const w = options;
  const verifier = new Verifier(w.keys);
  const endToEnd = new LatencyHistogram();
  const publish = new LatencyHistogram();
  const timed = w.durationS > 0;
  const total = timed ? 0 : w.messages;
  let sent = 0;
  let refused = 0;
  let sendError: string | undefined;
  let lastDelivery = 0;
  let sendingDone = false;
  let wakeDone: (() => void) | undefined;
  let consumeStarted = 0;
  /** Sent, not failed, not yet delivered: what `maxLag` bounds. */
  const lag = () => sent - refused - verifier.acceptedDelivered;
  /** Lanes waiting on `maxLag`, each woken by a delivery or its own 100 ms re-check. */
  const waiters = new Set<() => void>();
  /** Sends in flight and lanes waiting on the lag: while any, silence means a stall. */
  let blocked = 0;
  /** Last delivery, send start or send settling. */
  let lastProgress = performance.now();
  let stalled: string | undefined;
  let onStall: (() => void) | undefined;

  const received = (body: Buffer) => {
    const now = performance.now();
    lastProgress = now;
    if (!verifier.record(body.readUInt32LE(8), body.readUInt32LE(12))) return;
    endToEnd.record(now - body.readDoubleLE(0));
    lastDelivery = now;
    if (waiters.size > 0 && lag() <= w.maxLag / 2) {
      for (const wake of [...waiters]) wake();
    }
    if (sendingDone && verifier.acceptedDelivered >= sent - refused) wakeDone?.();
  };

  // Start from a collected heap when node exposes the collector, so an earlier run's garbage
  // does not count as this run's memory.
  (globalThis as { gc?: () => void }).gc?.();
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    context.onProgress?.(sent, verifier.unique, total);
    if (
      stalled === undefined &&
      !sendingDone &&
      blocked > 0 &&
      performance.now() - lastProgress > w.drainTimeoutS * 1000
    ) {
      stalled = `no delivery for ${w.drainTimeoutS} s while producers waited on the broker`;
      for (const wake of [...waiters]) wake();
      onStall?.();
    }
  }, 100);
  try {
    if (!w.backlog) {
      await transport.consume(received);
    }
    const cpuStart = process.cpuUsage();
    const started = performance.now();
    consumeStarted = started;
    const template = Buffer.alloc(w.size, 0x61);
    const perProducer = (p: number) =>
      Math.floor(w.messages / w.producers) + (p < w.messages % w.producers ? 1 : 0);
    const intervalMs = w.rate > 0 ? (1000 * w.producers) / w.rate : 0;

    const timeUp = () => timed && performance.now() - started >= w.durationS * 1000;
    const waitForLag = () =>
      new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, 100);
        waiters.add(wake);
      });

    const producer = async (p: number) => {
      let nextSeq = 0;
      const quota = timed ? Number.POSITIVE_INFINITY : perProducer(p);
      const lane = async () => {
        for (;;) {
          // On a schedule, the schedule alone ends a timed run (below): a batch due in time is
          // sent even if the loop gets to it late (lateness is latency, not fewer messages).
          if (nextSeq >= quota || stalled !== undefined || (intervalMs === 0 && timeUp())) return;
          if (w.maxLag > 0 && lag() > w.maxLag) {
            blocked++;
            try {
              while (lag() > w.maxLag && stalled === undefined && !timeUp()) await waitForLag();
            } finally {
              blocked--;
            }
            // Held by the lag past the duration: the run is over, schedule or not.
            if (timeUp()) return;
            continue;
          }
          if (intervalMs > 0) {
            // On a schedule, a message due after the end of a timed run is not sent.
            if (timed && nextSeq * intervalMs >= w.durationS * 1000) return;
            // Wait for the next message's due time, then send what is due by now (at most
            // `batch`): a message never waits in the client for later ones to fill its batch,
            // which would add the batch's span to the measured latency.
            const wait = started + nextSeq * intervalMs - performance.now();
            if (wait > 1) {
              await new Promise((resolve) => setTimeout(resolve, wait));
              // Another lane of this producer may have sent what was due meanwhile.
              continue;
            }
          }
          const first = nextSeq;
          let count = Math.min(w.batch, quota - first);
          if (intervalMs > 0) {
            const dueNow = Math.floor((performance.now() + 1 - started) / intervalMs) + 1;
            const dueInRun = timed ? Math.ceil((w.durationS * 1000) / intervalMs) : dueNow;
            count = Math.max(1, Math.min(count, Math.min(dueNow, dueInRun) - first));
          }
          nextSeq += count;
          const now = performance.now();
          const batch: BenchMessage[] = new Array(count);
          const intended = new Float64Array(count);
          for (let i = 0; i < count; i++) {
            const body = Buffer.from(template);
            const at = intervalMs > 0 ? started + (first + i) * intervalMs : now;
            intended[i] = at;
            body.writeDoubleLE(at, 0);
            body.writeUInt32LE(p, 8);
            body.writeUInt32LE(first + i, 12);
            batch[i] = { body, key: keyOf(first + i, w.keys) };
          }
          sent += count;
          blocked++;
          lastProgress = performance.now();
          try {
            await transport.send(batch, p);
            const acked = performance.now();
            for (let i = 0; i < count; i++) publish.record(acked - intended[i]!);
          } catch (error) {
            refused += count;
            verifier.refuse(p, first, count);
            sendError ??= (error instanceof Error ? error.message : String(error)).split('\n')[0];
          } finally {
            blocked--;
            lastProgress = performance.now();
          }
        }
      };
      await Promise.all(Array.from({ length: w.inflight }, lane));
    };
    // A stall ends the sending phase even if a send never settles (its lane is left behind).
    const stall = new Promise<void>((resolve) => {
      onStall = resolve;
    });
    await Promise.race([Promise.all(Array.from({ length: w.producers }, (_, p) => producer(p))), stall]);
    const produced = performance.now();
    if (w.backlog && stalled === undefined) {
      consumeStarted = performance.now();
      await transport.consume(received);
    }
    sendingDone = true;
    if (stalled === undefined) {
      await drain(
        () => verifier.acceptedDelivered >= sent - refused,
        () => lastDelivery,
        w.drainTimeoutS,
        (wake) => {
          wakeDone = wake;
        },
      );
    }
    const ended = lastDelivery > 0 ? lastDelivery : performance.now();
    const cpu = process.cpuUsage(cpuStart);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    context.onProgress?.(sent, verifier.unique, total);
    const produceSeconds = Math.max(1e-6, (produced - started) / 1000);
    const consumeSeconds = Math.max(1e-6, (ended - consumeStarted) / 1000);
    const MB = 1024 * 1024;
    const acked = sent - refused;
    return {
      label: options.label,
      library: context.library,
      broker: context.broker,
      workload: w.name,
      size: w.size,
      sent,
      refused,
      ...(sendError === undefined ? {} : { sendError }),
      ...(stalled === undefined ? {} : { stalled }),
      received: verifier.unique,
      lost: verifier.lost(sent, refused),
      duplicated: verifier.duplicated,
      outOfOrder: verifier.outOfOrder,
      produceRate: acked / produceSeconds,
      produceMBps: (acked * w.size) / MB / produceSeconds,
      endToEndRate: verifier.unique / consumeSeconds,
      endToEndMBps: (verifier.unique * w.size) / MB / consumeSeconds,
      endToEnd: endToEnd.summary(),
      publish: publish.summary(),
      cpuUsPerMessage: verifier.unique > 0 ? (cpu.user + cpu.system) / verifier.unique : 0,
      peakRssMB: peakRss / MB,
      seconds: (ended - started) / 1000,
    };
  } finally {
    clearInterval(sampler);
    await transport.close();
  }
}

/** Resolves once `complete()` or once `timeoutS` pass with no delivery (checked every 100 ms). */
function drain(
  complete: () => boolean,
  last: () => number,
  timeoutS: number,
  register: (wake: () => void) => void,
): Promise<void> {
  if (complete()) return Promise.resolve();
  return new Promise((resolve) => {
    const since = performance.now();
    const timer = setInterval(() => {
      if (complete() || performance.now() - Math.max(since, last()) > timeoutS * 1000) done();
    }, 100);
    const done = () => {
      clearInterval(timer);
      resolve();
    };
    register(done);
  });
}

/** A new topic name for one run. */
export function benchTopicName(): string {
  return `bench-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** The consumer group of a run on `topic` (one per topic, see `BenchOptions.topic`). */
export function benchGroupName(topic: string): string {
  return `bench-${topic}`;
}

/** The workload through mqkit: one group per topic, `order` and `concurrency` as given, bytes bodies. */
export async function benchBroker(
  broker: Broker,
  options: BenchOptions,
  onProgress?: ProgressListener,
): Promise<BenchResult> {
  const name = options.topic ?? benchTopicName();
  const topic = defineTopic(name, { codec: bytesCodec });
  await broker.ensureTopic(topic.name, { partitions: options.partitions });
  const producers: Producer[] = [];
  const producerOf = (p: number) => {
    let producer = producers[p];
    if (producer === undefined) {
      producer = broker.producer({ acks: options.acks });
      producers[p] = producer;
    }
    return producer;
  };
  const subscriptions: Subscription[] = [];
  const common = {
    topic,
    group: benchGroupName(name),
    order: options.order,
    concurrency: options.concurrency,
    deadLetter: 'discard',
  } as const;
  const pause = () => new Promise((resolve) => setTimeout(resolve, options.handlerMs));
  return runWorkload(
    options,
    {
      consume: async (received) => {
        for (let c = 0; c < options.consumers; c++) {
          subscriptions.push(
            options.consumeBatch > 0
              ? await broker.subscribe(
                  { ...common, batch: { maxSize: options.consumeBatch } },
                  async (ds) => {
                    if (options.handlerMs > 0) await pause();
                    for (const d of ds) received(d.body as Buffer);
                  },
                )
              : await broker.subscribe(common, async (d) => {
                  if (options.handlerMs > 0) await pause();
                  received(d.body as Buffer);
                }),
          );
        }
      },
      send: async (batch, p) => {
        await producerOf(p).sendBatch(
          batch.map(({ body, key }) => (key === undefined ? { topic, body } : { topic, body, key })),
        );
      },
      close: async () => {
        for (const s of subscriptions) await s.close();
        for (const p of producers) await p?.close();
      },
    },
    { library: 'mqkit', broker: broker.kind, ...(onProgress ? { onProgress } : {}) },
  );
}

/** A rate as text: `12,345`. */
const rate = (n: number) => Math.round(n).toLocaleString('en-US');

/** Prints results as an aligned table; with a baseline, adds each row's end-to-end ratio to it. */
export function formatResults(results: readonly BenchResult[], baseline?: BenchResult): string {
  const rows = [
    [
      'run',
      'sent',
      'bytes',
      'produce msg/s',
      'e2e msg/s',
      'e2e MB/s',
      'e2e p50 ms',
      'p99',
      'p99.9',
      'max',
      'pub p99',
      'lost',
      'refused',
      'dup',
      'ooo',
      'cpu µs/msg',
      'rss MB',
      ...(baseline ? ['vs raw'] : []),
    ],
    ...results.map((r) => {
      // A broker tool's row reports what the tool reports; a figure it lacks shows as '-'.
      const n = (value: number, text: string) => (r.external && value === 0 ? '-' : text);
      return [
        r.label,
        r.external ? '-' : String(r.sent),
        String(r.size),
        n(r.produceRate, rate(r.produceRate)),
        n(r.endToEndRate, rate(r.endToEndRate)),
        n(r.endToEndMBps, r.endToEndMBps.toFixed(1)),
        n(r.endToEnd.p50, r.endToEnd.p50.toFixed(2)),
        n(r.endToEnd.p99, r.endToEnd.p99.toFixed(2)),
        n(r.endToEnd.p999, r.endToEnd.p999.toFixed(2)),
        n(r.endToEnd.max, r.endToEnd.max.toFixed(1)),
        n(r.publish.p99, r.publish.p99.toFixed(2)),
        ...(r.external
          ? ['-', '-', '-', '-', '-', '-']
          : [
              String(r.lost),
              String(r.refused),
              String(r.duplicated),
              String(r.outOfOrder),
              r.cpuUsPerMessage.toFixed(1),
              r.peakRssMB.toFixed(0),
            ]),
        ...(baseline ? [(r.endToEndRate / baseline.endToEndRate).toFixed(2)] : []),
      ];
    }),
  ];
  return alignTable(rows);
}

/** Rows of cells as aligned text: the first column left, the others right. */
export function alignTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

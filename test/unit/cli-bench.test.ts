import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import type { SelectionReport } from '../../src/cli/bench/select.js';

// `mqkit bench` as a user runs it: a child process on real brokers, tiny counts. Figures are
// not asserted (they belong to the printed report); what is checked is that every message was
// verified and every report was written.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const main = join(repo, 'src/cli/main.ts');
const { MQ_URL: _ignored, CI: _ci, ...env } = process.env;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function mqkit(args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', main, ...args],
      { cwd: repo, env, timeout: 170_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

function expectOneLine(run: Run, code: number, says: RegExp): void {
  expect(run.stderr).toMatch(/^mqkit: [^\n]+\n$/);
  expect(run.stderr).toMatch(says);
  expect(run.stdout).toBe('');
  expect(run.code).toBe(code);
}

describe.concurrent('mqkit bench', { timeout: 180_000 }, () => {
  it('prints and writes the report of the finished runs when one fails, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mqkit-bench-'));
    const peer = join(dir, 'broken-peer.mjs');
    writeFileSync(
      peer,
      "export const benchPeer = { name: 'broken', brokers: ['memory'], run: async () => { throw new Error('peer broke'); } };\n",
    );
    const json = join(dir, 'r.json');
    const run = await mqkit([
      'bench',
      '--url',
      'memory://',
      '--messages',
      '200',
      '--peer',
      peer,
      '--json',
      json,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'mqkit: 1 run(s) failed, the others are reported: broken memory on memory://: peer broke\n',
    );
    expect(run.stdout).toMatch(/\nmqkit memory +200 /);
    expect(run.stdout).toMatch(/\nFAILED broken memory on memory:\/\/: peer broke\n/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as SelectionReport;
    expect(report.failures).toEqual(['broken memory on memory://: peer broke']);
    expect(report.brokers[0]!.results[0]!.received).toBe(200);
  });

  it('deletes what a run declared: the Kafka topic, and the RabbitMQ exchanges and queues', async () => {
    const { benchBroker, benchGroupName } = await import('../../src/cli/bench.js');
    const { deleteRunResources } = await import('../../src/cli/bench/cleanup.js');
    const { workloadDefaults } = await import('../../src/cli/bench/workload.js');
    const { connect } = await import('../../src/connect.js');
    const amqp = await import('amqplib');
    const { default: kafkajs } = await import('kafkajs');
    const { kafkaHosts } = await import('../../src/cli/bench/raw-kafkajs.js');
    for (const url of [inject('kafkaUrl'), inject('amqpUrl')]) {
      const topic = `bench-cleanup-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
      const broker = await connect(url);
      try {
        const w = { ...workloadDefaults, messages: 100, batch: 50, partitions: 2, label: 'cleanup', topic };
        expect(await benchBroker(broker, w)).toMatchObject({ received: 100 });
      } finally {
        await broker.close();
      }
      const group = benchGroupName(topic);
      await deleteRunResources({ url, broker: broker.kind, topic, group, partitions: 2 });
      if (broker.kind === 'kafka') {
        const admin = new kafkajs.Kafka({
          brokers: kafkaHosts(url),
          logLevel: kafkajs.logLevel.NOTHING,
        }).admin();
        await admin.connect();
        try {
          expect(await admin.listTopics()).not.toContain(topic);
        } finally {
          await admin.disconnect();
        }
      } else {
        const connection = await amqp.connect(url);
        connection.on('error', () => {});
        const exists = async (
          check: (ch: Awaited<ReturnType<typeof connection.createChannel>>) => Promise<unknown>,
        ) => {
          const ch = await connection.createChannel();
          ch.on('error', () => {});
          try {
            await check(ch);
            await ch.close();
            return true;
          } catch {
            return false;
          }
        };
        try {
          expect(await exists((ch) => ch.checkExchange(topic))).toBe(false);
          expect(await exists((ch) => ch.checkExchange(`${topic}:${group}:hash`))).toBe(false);
          expect(await exists((ch) => ch.checkQueue(`${topic}:${group}:p0`))).toBe(false);
          expect(await exists((ch) => ch.checkQueue(`${topic}:${group}:p1`))).toBe(false);
        } finally {
          await connection.close();
        }
      }
    }
  });

  it("withholds the mqkit/raw ratio when the raw client does not run the workload (order 'key')", async () => {
    const run = await mqkit([
      'bench',
      ...['--url', inject('amqpUrl'), '--messages', '300', '--keys', '10', '--order', 'key', '--batch', '50'],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/\nraw amqplib +300 /);
    expect(run.stdout).not.toMatch(/mqkit\/raw +e2e/);
    expect(run.stdout).toMatch(/No mqkit\/raw ratio on rabbitmq: not the same workload, .*order 'key'/);
  });

  it("runs raw amqplib with order 'concurrent' on one shared queue, as mqkit does", async () => {
    const { benchRawAmqplib } = await import('../../src/cli/bench/raw-amqplib.js');
    const { workloadDefaults } = await import('../../src/cli/bench/workload.js');
    const result = await benchRawAmqplib(inject('amqpUrl'), {
      ...workloadDefaults,
      messages: 300,
      batch: 50,
      order: 'concurrent',
      consumers: 2,
      prefetch: 64,
      label: 'raw concurrent',
    });
    expect(result).toMatchObject({ sent: 300, received: 300, lost: 0, refused: 0, duplicated: 0 });
  });

  it("runs the raw client first in even rounds, and keeps mqkit first in each round's results", async () => {
    const { runSelection } = await import('../../src/cli/bench/select.js');
    const { workloadDefaults } = await import('../../src/cli/bench/workload.js');
    const started: string[] = [];
    const report = await runSelection(
      [inject('amqpUrl')],
      { ...workloadDefaults, messages: 200, batch: 50 },
      'raw',
      '0.0.0',
      { onRun: (label) => started.push(label) },
      { repeat: 2 },
    );
    expect(report.failures).toEqual([]);
    expect(started).toEqual(['mqkit #1', 'raw amqplib #1', 'raw amqplib #2', 'mqkit #2']);
    expect(report.brokers.map((b) => b.results.map((r) => r.label))).toEqual([
      ['mqkit rabbitmq #1', 'raw amqplib #1'],
      ['mqkit rabbitmq #2', 'raw amqplib #2'],
    ]);
    expect(report.brokers.every((b) => b.ratio !== undefined)).toBe(true);
  });

  it('runs one workload on memory, Kafka and RabbitMQ with raw baselines, and writes every report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mqkit-bench-'));
    const [json, md, html] = ['r.json', 'r.md', 'r.html'].map((f) => join(dir, f)) as [
      string,
      string,
      string,
    ];
    const run = await mqkit([
      'bench',
      ...['--url', 'memory://', '--url', inject('kafkaUrl'), '--url', inject('amqpUrl')],
      ...['--messages', '2000', '--keys', '20', '--producers', '2', '--batch', '100', '--partitions', '2'],
      ...['--json', json, '--md', md, '--html', html],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^custom: 2000 messages of 100 B/);
    expect(run.stdout).toMatch(/\nmqkit memory +2000 /);
    expect(run.stdout).toMatch(/\nmqkit\/raw +e2e msg\/s +produce msg\/s +cpu µs\/msg\nkafka +\d/);
    expect(run.stdout).not.toContain('guest:guest');
    const report = JSON.parse(readFileSync(json, 'utf8')) as SelectionReport;
    expect(report.brokers.map((b) => b.broker)).toEqual(['memory', 'kafka', 'rabbitmq']);
    expect(report.brokers.flatMap((b) => b.results.map((r) => r.label))).toEqual([
      'mqkit memory',
      'mqkit kafka',
      'raw kafkajs',
      'mqkit rabbitmq',
      'raw amqplib',
    ]);
    for (const r of report.brokers.flatMap((b) => b.results)) {
      expect({
        label: r.label,
        sent: r.sent,
        received: r.received,
        lost: r.lost,
        duplicated: r.duplicated,
      }).toEqual({
        label: r.label,
        sent: 2000,
        received: 2000,
        lost: 0,
        duplicated: 0,
      });
      expect(r.endToEnd.count).toBe(2000);
      expect(r.cpuUsPerMessage).toBeGreaterThan(0);
    }
    // mqkit keeps each key's order (order 'partition'); the raw clients are reported as they are.
    for (const b of report.brokers) expect(b.results[0]!.outOfOrder).toBe(0);
    expect(report.brokers[2]!.url).toMatch(/^amqp:\/\/guest:\*\*\*@/);
    expect(report.brokers[1]!.ratio!.endToEnd).toBeGreaterThan(0);
    expect(readFileSync(md, 'utf8')).toMatch(/\| raw amqplib \| 2000 \|/);
    expect(readFileSync(html, 'utf8')).toMatch(/^<!doctype html>/);
  });

  it("runs the brokers' own tools with --ceiling (jars fetched once into the cache)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mqkit-bench-'));
    const json = join(dir, 'c.json');
    const run = await mqkit([
      'bench',
      ...['--url', inject('kafkaUrl'), '--url', inject('amqpUrl'), '--messages', '1000', '--size', '1024'],
      ...['--baseline', 'none', '--ceiling', '--json', json],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(readFileSync(json, 'utf8')) as SelectionReport;
    const tools = report.brokers.flatMap((b) => b.results.filter((r) => r.external));
    expect(tools.map((r) => r.library)).toEqual(['ProducerPerformance', 'PerfTest']);
    for (const r of tools) expect(r.produceRate).toBeGreaterThan(0);
    expect(report.brokers.map((b) => b.ratio)).toEqual([undefined, undefined]);
    // Without a raw baseline, mqkit over the tool is a note.
    expect(report.notes.filter((n) => n.startsWith('mqkit produce msg/s over'))).toEqual([
      expect.stringMatching(/^mqkit produce msg\/s over ProducerPerformance \S+ on kafka: \d+\.\d\d\.$/),
      expect.stringMatching(/^mqkit produce msg\/s over PerfTest \S+ on rabbitmq: \d+\.\d\d\.$/),
    ]);
    expect(run.stdout).toMatch(/\nProducerPerformance \d+\.\d+\.\d+ +- +1024 /);
    expect(run.stdout).toMatch(/not verified, CPU not measured/);
  });

  it('runs a shipped workload and a workload file on memory, options overriding them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mqkit-bench-'));
    const file = join(dir, 'keyed.yaml');
    writeFileSync(file, 'messages: 500\nkeys: 7\norder: key\nconsume-batch: 10\n');
    const fromFile = await mqkit(['bench', '--url', 'memory://', '--workload', file, '--size', '64']);
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toMatch(/^keyed: 500 messages of 64 B.*7 keys, order key/);
    expect(fromFile.stdout).toMatch(/\nmqkit memory +500 +64 .* 0 +0 +0 +[\d.]+ +\d+\n/);
    const shipped = await mqkit([
      'bench',
      '--url',
      'memory://',
      '--workload',
      'backlog-drain',
      '--messages',
      '300',
    ]);
    expect(shipped.code).toBe(0);
    expect(shipped.stdout).toMatch(/^backlog-drain: 300 messages .*backlog first/);
  });

  it.each([
    [['--url', 'nats://127.0.0.1'], 2, /--url "nats:\/\/127.0.0.1": unknown scheme nats:/],
    [['--size', '0'], 2, /--size must be a decimal integer from 16 to 1048576 \(got "0"\)/],
    [['--messages', '-5'], 2, /--messages must be a decimal integer from 1 to 10000000 \(got "-5"\)/],
    [['--producers', '-1'], 2, /--producers must be a decimal integer from 1/],
    [['--workload', 'fastest'], 2, /unknown workload "fastest": expected one of small-fast, 1kib-acks-all/],
    [['--workload', '/nonexistent/w.yaml'], 2, /cannot read workload file \/nonexistent\/w.yaml: ENOENT/],
    [['--baseline', 'peer'], 2, /--baseline must be raw or none/],
    [['--peer', '/nonexistent/peer.js'], 2, /--peer \/nonexistent\/peer.js: cannot load it: /],
    [
      ['--url', 'memory://', '--url', 'amqp://guest:guest@127.0.0.1:1'],
      1,
      /cannot connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127.0.0.1:1/,
    ],
    [['--url', 'kafka://127.0.0.1:1'], 1, /cannot connect to the Kafka cluster at 127.0.0.1:1/],
  ])('refuses %j in one line', async (args, code, says) => {
    expectOneLine(await mqkit(['bench', ...args]), code, says);
  });
});

import { execFile, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { runCli } from '../../src/cli/cli.js';
import { connect } from '../../src/index.js';
import type { BacklogReport } from '../../src/patterns/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';

// `mqkit lag` as a user runs it (a child process), on a group with a known backlog.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const main = join(repo, 'src/cli/main.ts');
const { MQ_URL: _ignored, ...env } = process.env;

function mqkit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', main, ...args],
      { cwd: repo, env, timeout: 120_000 },
      (error, stdout, stderr) => {
        done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
      },
    );
  });
}

/** A 2-partition topic whose group subscribed once and has `count` messages waiting, nobody consuming. */
async function waiting(url: string, count: number): Promise<{ topic: string; group: string }> {
  const broker = await connect(url);
  try {
    const topic = uniqueName('lag');
    const group = uniqueName('g');
    await broker.ensureTopic(topic, { partitions: 2 });
    let handled = 0;
    const sub = await broker.subscribe({ topic, group, order: 'key' }, () => {
      handled++;
    });
    const producer = broker.producer();
    await producer.send({ topic, key: 'first', body: {} });
    await waitFor(() => handled === 1);
    // Kafka: wait for the commit, so the group has a position on the topic.
    await waitFor(async () => (await broker.backlog(topic, group)).total === 0);
    await sub.close();
    await producer.sendBatch(Array.from({ length: count }, (_, i) => ({ topic, key: `k${i}`, body: { i } })));
    return { topic, group };
  } finally {
    await broker.close();
  }
}

const brokers = [
  ['kafka', () => inject('kafkaUrl')],
  ['rabbitmq', () => inject('amqpUrl')],
] as const;

describe.each(brokers)('mqkit lag on %s', { timeout: 180_000 }, (_kind, url) => {
  it('prints the table: a row per partition, the total, and the verdict after 3 samples', async () => {
    const { topic, group } = await waiting(url(), 30);
    const run = await mqkit(['lag', '--url', url(), '--topic', topic, '--group', group, '--interval', '100']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toContain(`topic ${topic}  group ${group}`);
    expect(lines[1]).toMatch(
      /^partition\s+backlog\s+ready\s+in-flight\s+consumers\s+in\/s\s+out\/s\s+lag-s\s+drain-s\s+health$/,
    );
    expect(lines.slice(2).map((l) => l.split(/\s+/)[0])).toEqual(['0', '1', 'total']);
    const total = lines[4]?.split(/\s+/);
    expect(total?.[1]).toBe('30');
    // Nobody consumes: the group is stopped (no consumer at the last two samples).
    expect(total?.at(-1)).toBe('stopped');
  });

  it('--json prints the report for scripts', async () => {
    const { topic, group } = await waiting(url(), 12);
    const run = await mqkit([
      'lag',
      '--url',
      url(),
      '--topic',
      topic,
      '--group',
      group,
      '--json',
      '--samples',
      '1',
    ]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as BacklogReport;
    expect(report).toMatchObject({ topic, group, total: 12, health: 'unknown' });
    expect(report.partitions.map((p) => p.consumers)).toEqual([0, 0]);
  });

  it('--watch prints a frame per sample (JSON lines with --json), and Ctrl-C ends it with status 0', async () => {
    const { topic, group } = await waiting(url(), 5);
    const framed = await mqkit([
      'lag',
      '--url',
      url(),
      '--topic',
      topic,
      '--group',
      group,
      '--watch',
      '--json',
      '--samples',
      '3',
      '--interval',
      '100',
    ]);
    expect(framed.code).toBe(0);
    const reports = framed.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as BacklogReport);
    expect(reports.map((r) => r.total)).toEqual([5, 5, 5]);
    expect(reports[2]?.health).toBe('stopped');

    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        main,
        'lag',
        '--url',
        url(),
        '--topic',
        topic,
        '--group',
        group,
        '--watch',
        '--interval',
        '100',
      ],
      { cwd: repo, env },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    await waitFor(() => stdout.split('\ntotal').length > 2, { timeoutMs: 60_000, message: () => stdout });
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});

describe('mqkit lag, in process', () => {
  it('--watch on a terminal redraws in place', async () => {
    const { topic, group } = await waiting(inject('amqpUrl'), 3);
    const frames: string[] = [];
    const result = await runCli(
      [
        'lag',
        '--url',
        inject('amqpUrl'),
        '--topic',
        topic,
        '--group',
        group,
        '--watch',
        '--samples',
        '2',
        '--interval',
        '100',
      ],
      { write: (text) => frames.push(text), tty: true },
    );
    expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(frames).toHaveLength(2);
    expect(frames[0]?.startsWith('rabbitmq topic')).toBe(true);
    // Up over the first frame's 5 lines (title, header, 2 partitions, total), then clear.
    expect(frames[1]?.startsWith('\x1b[5F\x1b[J')).toBe(true);
  });

  it.each([
    [['--watch=yes'], /--watch takes no value/],
    [['--interval', '5'], /--interval must be a decimal integer from 100/],
    [['--samples', '0'], /--samples must be a decimal integer from 1/],
  ])('refuses %j', async (extra, says) => {
    const result = await runCli(['lag', '--topic', 't', '--group', 'g', ...extra]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(says);
  });
});

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { handlesInterrupt, runCli } from '../../src/cli/cli.js';
import { connect } from '../../src/index.js';
import { uniqueName } from '../../src/testing/index.js';

// The `mqkit` command as a user runs it: a child process, its exit status and its output.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const main = join(repo, 'src/cli/main.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const { MQ_URL: _ignored, ...withoutMqUrl } = process.env;

function mqkit(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', main, ...args],
      { cwd: repo, env: { ...withoutMqUrl, ...env }, timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** A refused command line or a failed command: the given exit status, one line on stderr, nothing on stdout. */
function expectOneLine(run: Run, code: number, says: RegExp): void {
  expect(run.stderr).toMatch(/^mqkit: [^\n]+\n$/);
  expect(run.stderr).toMatch(says);
  expect(run.stdout).toBe('');
  expect(run.code).toBe(code);
}

// Each test starts node with tsx: seconds apiece on a loaded machine, hence the timeout.
describe.concurrent('mqkit command line', { timeout: 180_000 }, () => {
  it('says what is missing when no command is given', async () => {
    expectOneLine(await mqkit([]), 2, /no command given: expected demo, bench, lag/);
  });

  it('names an unknown command', async () => {
    expectOneLine(await mqkit(['lga']), 2, /unknown command "lga"/);
  });

  it('prints the package version for --version', async () => {
    const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    const run = await mqkit(['--version']);
    expect(run).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('prints the usage for --help, on stdout, exit 0', async () => {
    const run = await mqkit(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('mqkit <command> [options]');
    expect(run.stderr).toBe('');
  });

  it('refuses a negative count in one line', async () => {
    expectOneLine(
      await mqkit(['demo', '--orders', '-5']),
      2,
      /--orders must be a decimal integer from 1 to 1000000 \(got "-5"\)/,
    );
  });

  it('refuses hexadecimal and exponent counts', async () => {
    expectOneLine(await mqkit(['demo', '--orders', '0x10']), 2, /--orders must be a decimal integer/);
    expectOneLine(await mqkit(['bench', '--messages=1e2']), 2, /--messages must be a decimal integer/);
  });

  it('refuses an extra positional argument', async () => {
    expectOneLine(await mqkit(['demo', 'now']), 2, /unexpected argument "now" after demo/);
  });

  it('refuses an unknown option and one the command does not take', async () => {
    expectOneLine(await mqkit(['demo', '--ordres', '5']), 2, /unknown option "--ordres"/);
    expectOneLine(await mqkit(['demo', '--size', '5']), 2, /--size does not apply to demo/);
  });

  it('refuses a bench body size out of bounds in one line (was a raw RangeError)', async () => {
    expectOneLine(
      await mqkit(['bench', '--size', '99999999999']),
      2,
      /--size must be a decimal integer from 16 to 1048576 \(got "99999999999"\)/,
    );
    expectOneLine(
      await mqkit(['bench', '--size', '1048576', '--batch', '10000']),
      2,
      /bytes in flight; at most 268435456/,
    );
  });

  it('refuses an --acks value it does not know', async () => {
    expectOneLine(await mqkit(['bench', '--acks', 'some']), 2, /--acks must be one of all, leader, none/);
  });

  it('refuses an output file it cannot write before the first run', async () => {
    const run = await runCli([
      'bench',
      '--url',
      'memory://',
      '--messages',
      '20',
      '--md',
      '/nonexistent-dir/r.md',
    ]);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: 'mqkit: --md /nonexistent-dir/r.md: cannot write there\n',
    });
  });

  it('refuses --json before the command (it wrote a file named "true"), and --messages with --duration', async () => {
    // Refused before anything runs: exit 2, nothing on stdout, so no report file either.
    expectOneLine(
      await mqkit(['--json', 'bench', '--url', 'memory://', '--messages', '20']),
      2,
      /put the command first: mqkit bench --json FILE/,
    );
    expectOneLine(
      await mqkit(['bench', '--messages', '20', '--duration', '1']),
      2,
      /--messages and --duration exclude each other/,
    );
  });

  it.each([
    ['memory', () => 'memory://', /unknown topic none-/],
    ['kafka', () => inject('kafkaUrl'), /unknown topic none-/],
    [
      'rabbitmq',
      () => inject('amqpUrl'),
      /no queue of group g on topic none-.*: unknown topic, or a group that never subscribed/,
    ],
  ])('lag on %s: fails on an unknown topic instead of reporting total 0', async (_kind, url, says) => {
    expectOneLine(
      await mqkit(['lag', '--url', url(), '--topic', uniqueName('none'), '--group', 'g']),
      1,
      says,
    );
  });

  it.each([
    ['kafka', () => inject('kafkaUrl'), /group unknown has no committed position on topic lag-/],
    ['rabbitmq', () => inject('amqpUrl'), /no queue of group unknown on topic lag-/],
  ])('lag on %s: fails on a group that never consumed the topic', async (_kind, url, says) => {
    const topic = uniqueName('lag');
    const broker = await connect(url());
    await broker.ensureTopic(topic, { partitions: 2 });
    // Another group did subscribe: the topic exists and has consumers, just not this group.
    const sub = await broker.subscribe({ topic, group: 'known' }, () => {});
    await sub.close();
    await broker.close();
    expectOneLine(await mqkit(['lag', '--url', url(), '--topic', topic, '--group', 'unknown']), 1, says);
  });

  it.each([
    {
      what: 'an unreadable URL (a "/" in the password)',
      args: ['demo', '--url', 'amqp://user:se/cret@127.0.0.1:5672'],
    },
    {
      what: 'an unreadable --url=',
      args: ['lag', '--topic', 't', '--group', 'g', '--url=kafka://user:se/cret@127.0.0.1:1'],
    },
    {
      what: 'a refused connection',
      args: ['demo', '--orders', '10', '--url', 'amqp://user:secret@127.0.0.1:1'],
    },
    { what: 'a URL given without --url', args: ['demo', 'amqp://user:secret@127.0.0.1:1'] },
  ])('never prints a password: $what', async ({ args }) => {
    const run = await mqkit(args);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/^mqkit: [^\n]+\n$/);
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/se\/?cret/);
  });

  it('never prints the password of MQ_URL', async () => {
    const run = await mqkit(['lag', '--topic', 't', '--group', 'g'], { MQ_URL: 'amqp://u:pa/ss@h' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^mqkit: [^\n]+\n$/);
    expect(run.stderr).not.toContain('pa/ss');
  });

  it('demo prints its URL redacted', async () => {
    const run = await mqkit(['demo', '--orders', '10', '--url', 'memory://user:secret@cli-demo']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('order scenario on memory://user:***@cli-demo');
    expect(run.stdout).not.toContain('secret');
  });
});

describe('mqkit never prints a token or a decoded password (in process)', () => {
  it.each([
    ['a user info without a password (a token)', 'amqps://TOKEN123secret@127.0.0.1:1/?password=s3cr3t'],
    ['a percent-encoded password', 'amqp://user:pa%2Fss%40s3cr3t@127.0.0.1:1/'],
  ])('%s', async (_what, url) => {
    for (const args of [
      ['demo', '--orders', '10', '--url', url],
      ['lag', '--topic', 't', '--group', 'g', `--url=${url}`],
    ]) {
      const run = await runCli(args);
      expect(run.code).toBe(1);
      expect(`${run.stdout}${run.stderr}`).not.toMatch(/TOKEN123|s3cr3t|pa%2Fss/);
      expect(run.stderr).toContain('127.0.0.1:1');
    }
  });
});

describe('mqkit lag on the embedded broker (in process: memory:// lives in one process)', () => {
  it('reports a known group, and fails on an unknown one instead of reporting its backlog', async () => {
    const url = `memory://${uniqueName('cli-lag')}`;
    const topic = uniqueName('lag');
    const broker = await connect(url);
    await broker.ensureTopic(topic, { partitions: 2 });
    await broker.producer().send({ topic, key: 'k', body: { n: 1 } });
    const sub = await broker.subscribe({ topic, group: 'known', startFrom: 'latest' }, () => {});
    const known = await runCli(['lag', '--url', url, '--topic', topic, '--group', 'known', '--samples', '1']);
    expect(known.code).toBe(0);
    // Rows 0, 1 and total, each with a backlog of 0 and the 'ok' verdict of an empty backlog.
    expect(known.stdout).toMatch(/\n0 +0 .* ok\n1 +0 .* ok\ntotal +0 .* ok\n$/);
    const unknown = await runCli(['lag', '--url', url, '--topic', topic, '--group', 'unknown']);
    expect(unknown).toEqual({
      code: 1,
      stdout: '',
      stderr: `mqkit: group unknown has no committed position on topic ${topic}: unknown group, or one that has committed nothing yet\n`,
    });
    await sub.close();
    await broker.close();
  });
});

describe('mqkit outbox and demo --outbox: usage errors before any connection (in process)', () => {
  it('refuses --pg without --outbox, a demo --outbox without a PostgreSQL URL, and a bad --table, with status 2', async () => {
    // An unreachable broker: a usage error must come before any attempt to connect.
    const broker = 'amqp://127.0.0.1:1/';
    const pgOnly = await runCli(['demo', '--url', broker, '--pg', 'postgres://127.0.0.1:1/x']);
    expect(pgOnly).toMatchObject({ code: 2, stderr: expect.stringMatching(/--pg only with --outbox/) });
    const saved = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      const noPg = await runCli(['demo', '--outbox', '--url', broker]);
      expect(noPg).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs --pg URL/) });
    } finally {
      if (saved !== undefined) process.env.DATABASE_URL = saved;
    }
    const badTable = await runCli(['outbox', '--pg', 'postgres://127.0.0.1:1/x', '--table', 'Bad-Name']);
    expect(badTable).toMatchObject({ code: 2, stderr: expect.stringMatching(/--table must be/) });
  });
});

describe('mqkit Ctrl-C', () => {
  it('is consumed only by lag --watch; every other command keeps the default (one Ctrl-C exits)', () => {
    expect(handlesInterrupt(['lag', '--topic', 't', '--group', 'g', '--watch'])).toBe(true);
    expect(handlesInterrupt(['lag', '--topic', 't', '--group', 'g'])).toBe(false);
    expect(handlesInterrupt(['bench', '--url', 'memory://'])).toBe(false);
    expect(handlesInterrupt(['demo'])).toBe(false);
    expect(handlesInterrupt(['outbox'])).toBe(false);
    expect(handlesInterrupt(['nonsense'])).toBe(false);
  });
});

import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// What `npm pack` puts in the tarball, from a build made the way `prepack` makes it (into a
// scratch copy, so the repository's own dist is left alone), and that tarball's files used
// the way an application uses them: import and require.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  engines: { node: string };
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
  main: string;
  types: string;
  version: string;
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((done) => {
    execFile(command, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      done({ code, stdout, stderr });
    });
  });
}

let root = '';
let packed: Set<string>;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mqkit-package-'));
  for (const file of ['package.json', 'README.md', 'LICENSE']) {
    if (existsSync(join(repo, file))) cpSync(join(repo, file), join(root, file));
  }
  const build = await run(
    process.execPath,
    [
      join(repo, 'node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      join(root, 'dist'),
    ],
    repo,
  );
  if (build.code !== 0) throw new Error(`the build failed:\n${build.stdout}${build.stderr}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const pack = await run(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], root);
  if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const [report] = JSON.parse(pack.stdout) as [{ files: { path: string }[] }];
  packed = new Set(report.files.map((f) => f.path));
}, 180_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the npm tarball', () => {
  it('holds the MIT licence, the README and the build, and nothing from test/, bench/ or src/', () => {
    expect(packed.has('LICENSE')).toBe(true);
    expect(readFileSync(join(repo, 'LICENSE'), 'utf8')).toMatch(
      /^MIT License\n\nCopyright \(c\) 2026 the mqkit authors\n/,
    );
    expect(packed.has('README.md')).toBe(true);
    const outside = [...packed].filter(
      (p) => !p.startsWith('dist/') && !['LICENSE', 'README.md', 'package.json'].includes(p),
    );
    expect(outside).toEqual([]);
  });

  it('has no source map pointing at a file that is not in it', () => {
    const dangling: string[] = [];
    for (const path of packed) {
      if (!path.endsWith('.map')) continue;
      const map = JSON.parse(readFileSync(join(root, path), 'utf8')) as {
        sources: string[];
        sourceRoot?: string;
      };
      for (const source of map.sources) {
        const target = posix.normalize(posix.join(posix.dirname(path), map.sourceRoot ?? '', source));
        if (!packed.has(target)) dangling.push(`${path} -> ${source}`);
      }
    }
    expect(dangling).toEqual([]);
  });

  it('holds every file package.json points at: main, types, bin and each export', () => {
    const targets = [
      pkg.main,
      pkg.types,
      ...Object.values(pkg.bin),
      ...Object.values(pkg.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e))),
    ].map((p) => posix.normalize(p));
    expect(targets.filter((t) => !packed.has(t))).toEqual([]);
  });

  it('runs no script when installed (prepare runs for git and directory installs; prepack builds for pack and publish)', () => {
    const onInstall = ['preinstall', 'install', 'postinstall', 'prepare'].filter((s) => s in pkg.scripts);
    expect(onInstall).toEqual([]);
    expect(pkg.scripts.prepack).toMatch(/npm run build/);
  });

  it('loads with import and with require (require of ESM: Node 20.19 and later, as engines says)', async () => {
    expect(pkg.engines.node).toBe('>=20.19');
    const app = join(root, 'app');
    const installed = join(app, 'node_modules/mqkit');
    mkdirSync(installed, { recursive: true });
    for (const path of packed) {
      mkdirSync(dirname(join(installed, path)), { recursive: true });
      cpSync(join(root, path), join(installed, path));
    }
    // Every runtime dependency, as `npm install mqkit` would put it next to the package.
    for (const dependency of Object.keys(pkg.dependencies)) {
      mkdirSync(dirname(join(app, 'node_modules', dependency)), { recursive: true });
      symlinkSync(join(repo, 'node_modules', dependency), join(app, 'node_modules', dependency));
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    const entries = [
      ['mqkit', 'connect'],
      ['mqkit/patterns', 'idempotent'],
      ['mqkit/testing', 'waitFor'],
      ['mqkit/bench', 'runWorkload'],
    ];
    const probe = (load: (spec: string) => string) =>
      entries
        .map(([spec, name]) => `process.stdout.write(typeof ${load(JSON.stringify(spec))}.${name} + ' ');`)
        .join('\n');
    writeFileSync(
      join(app, 'cjs.cjs'),
      probe((spec) => `require(${spec})`),
    );
    writeFileSync(
      join(app, 'esm.mjs'),
      probe((spec) => `(await import(${spec}))`),
    );
    const required = await run(process.execPath, ['cjs.cjs'], app);
    expect(required).toEqual({ code: 0, stdout: 'function function function function ', stderr: '' });
    const imported = await run(process.execPath, ['esm.mjs'], app);
    expect(imported).toEqual({ code: 0, stdout: 'function function function function ', stderr: '' });
    const cli = await run(process.execPath, [join(installed, pkg.bin.mqkit!), '--version'], app);
    expect(cli).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
    // A peer written in JavaScript against mqkit/bench, run by the installed CLI: a loopback
    // "library" that hands each sent body straight to the consumer.
    writeFileSync(
      join(app, 'loopback-peer.mjs'),
      [
        "import { runWorkload } from 'mqkit/bench';",
        'export const benchPeer = {',
        "  name: 'loopback',",
        "  brokers: ['memory'],",
        '  run: (url, options, onProgress) => {',
        '    let received;',
        '    const transport = {',
        '      consume: async (onReceived) => { received = onReceived; },',
        '      send: async (batch) => { for (const m of batch) received(m.body); },',
        '      close: async () => {},',
        '    };',
        "    return runWorkload(options, transport, { library: 'loopback', broker: 'memory', onProgress });",
        '  },',
        '};',
      ].join('\n'),
    );
    const peer = await run(
      process.execPath,
      [
        join(installed, pkg.bin.mqkit!),
        ...[
          'bench',
          '--url',
          'memory://',
          '--messages',
          '300',
          '--batch',
          '50',
          '--peer',
          'loopback-peer.mjs',
        ],
      ],
      app,
    );
    expect(peer.stderr).toBe('');
    expect(peer.code).toBe(0);
    expect(peer.stdout).toMatch(/\nloopback memory +300 +100 /);
    // A TypeScript peer: on a Node that cannot load TypeScript (no type stripping, as Node 20),
    // refused with what to do, in one line; where Node strips types, it loads (and this one
    // exports no benchPeer).
    writeFileSync(join(app, 'typed-peer.ts'), 'export const benchPeer: unknown = undefined;\n');
    const typed = await run(
      process.execPath,
      [join(installed, pkg.bin.mqkit!), 'bench', '--url', 'memory://', '--peer', 'typed-peer.ts'],
      app,
    );
    expect(typed.code).not.toBe(0);
    const stripsTypes = Boolean((process.features as { typescript?: unknown }).typescript);
    expect(typed.stderr).toMatch(
      stripsTypes
        ? /^mqkit: --peer typed-peer\.ts: exports no benchPeer [^\n]+\n$/
        : /^mqkit: --peer typed-peer\.ts: a TypeScript module needs a loader: [^\n]+\n$/,
    );
  });
});

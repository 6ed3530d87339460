import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Capabilities } from '../../src/core/broker.js';

// Checks, by reading the conformance suite's source, that every capability flag is read by it:
// a flag the suite never reads would be decorative. Cheap, but it fails the day a flag is added
// to `Capabilities` without tests (the `satisfies` below stops compiling first).

/**
 * How the suite uses each flag. 'switch': a pair of tests, `[flag]` run where true and `[!flag]`
 * where false. 'per-level': a pair per acks level. 'named': one test on every broker, named
 * after the value (durable: a restart is out of the suite's reach; maxMessageBytes: a size).
 */
const USES = {
  replay: 'switch',
  brokerSideTagFilter: 'switch',
  keyIsolation: 'switch',
  partitions: 'switch',
  nativeDelay: 'switch',
  durable: 'named',
  acks: 'per-level',
  maxMessageBytes: 'named',
} as const satisfies Record<keyof Capabilities, 'switch' | 'per-level' | 'named'>;

const root = join(import.meta.dirname, '../..');
const suite = readFileSync(join(root, 'src/testing/conformance.ts'), 'utf8');

/** Whether the suite's source matches, asserted without printing the whole source on failure. */
function expectInSuite(pattern: RegExp, what: string): void {
  expect(pattern.test(suite), `conformance.ts has ${what} (${pattern})`).toBe(true);
}

describe('conformance suite and capability flags', () => {
  for (const [flag, use] of Object.entries(USES)) {
    it(`reads ${flag} (${use})`, () => {
      if (use === 'switch') {
        for (const value of [true, false]) {
          expectInSuite(new RegExp(`feature\\(\\s*'${flag}',\\s*${value},`), `a test for ${flag} = ${value}`);
        }
      } else if (use === 'per-level') {
        expectInSuite(/const claimed = caps\.acks\.includes\(acks\)/, 'a switch per acks level');
        expectInSuite(/it\.runIf\(claimed\)\(\s*`\[acks:\$\{acks\}\]/, 'a test per claimed level');
        expectInSuite(/it\.runIf\(!claimed\)\(\s*`\[!acks:\$\{acks\}\]/, 'a test per level not claimed');
      } else {
        expectInSuite(new RegExp(`\`\\[[^\`]*\\$\\{caps\\.${flag}\\b`), `a test named after ${flag}`);
      }
    });
  }

  it('switches tests only through the flags: no other runIf, skip, skipIf, todo or only', () => {
    const switches = suite.match(/\bit\.\w+\(/g) ?? [];
    expect(switches.sort()).toEqual(['it.runIf(', 'it.runIf(', 'it.runIf(']); // feature() and the acks pair
    expectInSuite(/it\.runIf\(caps\[flag\] === value\)/, 'feature() switching on the flag');
  });

  it("is given expected capabilities written in each test file, not the adapter's own constant", () => {
    const dir = join(root, 'test/conformance');
    const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      // Passing the adapter's constant would make the suite's capabilities check compare it with itself.
      expect(text, file).not.toMatch(/\w+Capabilities\b/);
      expect(text, file).toMatch(/capabilities: \{/);
    }
  });
});

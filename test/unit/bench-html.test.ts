import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatHtml } from '../../src/cli/bench/report.js';
import { CHROMIUM_INSTALL_TIMEOUT_MS, dumpDom, ensureChromium } from '../infra/chromium.js';
import { sampleReport } from './bench-sample.js';

// The HTML report as a reader sees it: opened offline in headless Chromium, after its script ran.

let chromium: string;
beforeAll(async () => {
  chromium = await ensureChromium();
  // Above apt-get's own limits, so a failing install ends with its one line, not a hook timeout.
}, CHROMIUM_INSTALL_TIMEOUT_MS);

describe('mqkit bench --html in a browser', { timeout: 120_000 }, () => {
  it('draws a bar per run and series in each chart', async () => {
    const report = sampleReport();
    // A folder name a bare `file://${path}` gets wrong ('#' starts a fragment, ' ' must be escaped).
    const file = join(mkdtempSync(join(tmpdir(), 'mqkit html #')), 'report.html');
    writeFileSync(file, formatHtml(report));
    const dom = await dumpDom(chromium, file);
    const runs = report.brokers.flatMap((b) => b.results).length;
    expect(dom).toContain(`data-rendered="${runs}"`);
    const bars = [
      ...dom.matchAll(/<rect class="bar (lib-[a-z]+)" data-run="([^"]*)" data-series="([^"]*)"/g),
    ];
    // throughput: e2e + produce; latency: p50, p99, p99.9; CPU: one
    expect(bars).toHaveLength(runs * 6);
    for (const id of ['throughput', 'latency', 'cpu']) expect(dom).toContain(`<figure id="${id}">`);
    expect(bars.filter((b) => b[1] === 'lib-mqkit')).toHaveLength(2 * 6);
    expect(bars.filter((b) => b[1] === 'lib-peer')).toHaveLength(6);
    // The widest throughput bar belongs to the fastest run (raw kafkajs's produce rate).
    const widths = [
      ...dom.matchAll(/data-run="([^"]*)" data-series="produce" x="\d+" y="[\d.]+" width="([\d.]+)"/g),
    ];
    const widest = widths.reduce((a, b) => (Number(b[2]) > Number(a[2]) ? b : a));
    expect(widest[1]).toBe('raw kafkajs');
  });
});

import { alignTable, type BenchResult, formatResults } from '../bench.js';
import type { SelectionReport } from './select.js';
import { describeWorkload } from './workload.js';

const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const whole = (n: number) => Math.round(n).toLocaleString('en-US');

/** A cell of `r`'s row: for a broker tool's row, a figure it does not report (0) is '-', not 0. */
const reported = (r: BenchResult, value: number, text: string) => (r.external && value === 0 ? '-' : text);
const reportedMs = (r: BenchResult, value: number) => reported(r, value, fixed(value, 2));

/** The console report: the workload, one table of every run, then mqkit/raw ratios. */
export function formatConsole(report: SelectionReport): string {
  const results = report.brokers.flatMap((b) => b.results);
  const lines = [describeWorkload(report.workload), '', formatResults(results)];
  const ratios = report.brokers.filter((b) => b.ratio !== undefined);
  const withCeiling = ratios.some((b) => b.ratio!.ceiling !== undefined);
  if (ratios.length > 0) {
    lines.push(
      '',
      alignTable([
        [
          'mqkit/raw',
          'e2e msg/s',
          'produce msg/s',
          'cpu µs/msg',
          ...(withCeiling ? ['produce vs ceiling'] : []),
        ],
        ...ratios.map((b) => [
          b.round === undefined ? b.broker : `${b.broker} #${b.round}`,
          fixed(b.ratio!.endToEnd, 2),
          fixed(b.ratio!.produce, 2),
          fixed(b.ratio!.cpu, 2),
          ...(withCeiling ? [b.ratio!.ceiling === undefined ? '-' : fixed(b.ratio!.ceiling, 2)] : []),
        ]),
      ]),
    );
  }
  lines.push(...spreads(report));
  for (const b of report.brokers) {
    const round = b.round === undefined ? '' : ` #${b.round}`;
    for (const v of b.vsPeers ?? []) {
      lines.push(`mqkit/${v.peer} end to end on ${b.broker}${round}: ${fixed(v.endToEnd, 2)}`);
    }
  }
  const failed = results.filter((r) => r.sendError !== undefined);
  for (const r of failed) lines.push(`${r.label}: ${r.refused} sends refused: ${r.sendError}`);
  for (const r of results.filter((x) => x.stalled !== undefined)) {
    lines.push(`${r.label}: sending stopped, ${r.stalled}`);
  }
  if (results.some((r) => r.external)) {
    lines.push(
      "Rows of the brokers' own tools (--ceiling) are their own reports: not verified, CPU not measured.",
    );
  }
  for (const note of report.notes) lines.push(note);
  for (const failure of report.failures) lines.push(`FAILED ${failure}`);
  return lines.join('\n');
}

/** With several rounds: each broker's mqkit/raw ratios as min-max and median over the rounds. */
export function spreads(report: SelectionReport): string[] {
  const byBroker = new Map<string, NonNullable<SelectionReport['brokers'][number]['ratio']>[]>();
  for (const b of report.brokers) {
    if (b.round === undefined || b.ratio === undefined) continue;
    byBroker.set(b.broker, [...(byBroker.get(b.broker) ?? []), b.ratio]);
  }
  const spread = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid =
      sorted.length % 2 === 1
        ? sorted[(sorted.length - 1) / 2]!
        : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    return `${fixed(sorted[0]!, 2)}-${fixed(sorted.at(-1)!, 2)} (median ${fixed(mid, 2)})`;
  };
  return [...byBroker].map(
    ([broker, ratios]) =>
      `mqkit/raw on ${broker} over ${ratios.length} rounds: end to end ${spread(ratios.map((r) => r.endToEnd))}, CPU µs/msg ${spread(ratios.map((r) => r.cpu))}`,
  );
}

/** Every figure and the environment, as JSON. */
export function formatJson(report: SelectionReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** A Markdown report: environment, workload, the results table and the ratios. */
export function formatMarkdown(report: SelectionReport): string {
  const env = report.environment;
  const row = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const head = [
    'run',
    'sent',
    'produce msg/s',
    'e2e msg/s',
    'e2e MB/s',
    'e2e p50 / p95 / p99 / p99.9 / max ms',
    'publish p50 / p99 ms',
    'lost',
    'refused',
    'dup',
    'out of order',
    'CPU µs/msg',
    'peak RSS MB',
  ];
  const results = report.brokers.flatMap((b) => b.results);
  const lines = [
    `# mqkit bench: ${report.workload.name}`,
    '',
    `${describeWorkload(report.workload)}.`,
    '',
    `Node ${env.node}, mqkit ${env.mqkit}${env.kafkajs ? `, kafkajs ${env.kafkajs}` : ''}${env.amqplib ? `, amqplib ${env.amqplib}` : ''}${env.rocketmq ? `, rocketmq-client-nodejs ${env.rocketmq}` : ''}; ${env.cores} × ${env.cpu}, ${env.memoryGB} GB, ${env.platform}; ${env.date}.`,
    '',
    row(head),
    row(head.map((_, i) => (i === 0 ? '---' : '---:'))),
    ...results.map((r) => {
      const v = (value: number, text: string) => reported(r, value, text);
      const ms = (value: number) => reportedMs(r, value);
      return row([
        r.label,
        String(r.sent),
        v(r.produceRate, whole(r.produceRate)),
        v(r.endToEndRate, whole(r.endToEndRate)),
        v(r.endToEndMBps, fixed(r.endToEndMBps, 1)),
        [r.endToEnd.p50, r.endToEnd.p95, r.endToEnd.p99, r.endToEnd.p999, r.endToEnd.max].map(ms).join(' / '),
        `${ms(r.publish.p50)} / ${ms(r.publish.p99)}`,
        ...(r.external
          ? ['-', '-', '-', '-', '-', '-']
          : [
              String(r.lost),
              String(r.refused),
              String(r.duplicated),
              String(r.outOfOrder),
              fixed(r.cpuUsPerMessage, 1),
              fixed(r.peakRssMB, 0),
            ]),
      ]);
    }),
  ];
  const ratios = report.brokers.filter((b) => b.ratio !== undefined);
  const withCeiling = ratios.some((b) => b.ratio!.ceiling !== undefined);
  if (ratios.length > 0) {
    lines.push(
      '',
      row([
        'mqkit/raw',
        'end to end',
        'produce',
        'CPU µs/msg',
        ...(withCeiling ? ['produce vs ceiling'] : []),
      ]),
      row(['---', '---:', '---:', '---:', ...(withCeiling ? ['---:'] : [])]),
    );
    for (const b of ratios) {
      const r = b.ratio!;
      const ceiling = withCeiling ? [r.ceiling === undefined ? '-' : fixed(r.ceiling, 2)] : [];
      const name = b.round === undefined ? b.broker : `${b.broker} #${b.round}`;
      lines.push(row([name, fixed(r.endToEnd, 2), fixed(r.produce, 2), fixed(r.cpu, 2), ...ceiling]));
    }
  }
  for (const line of spreads(report)) lines.push('', line);
  for (const b of report.brokers) {
    const round = b.round === undefined ? '' : ` #${b.round}`;
    for (const v of b.vsPeers ?? []) {
      lines.push('', `mqkit/${v.peer} end to end on ${b.broker}${round}: ${fixed(v.endToEnd, 2)}`);
    }
  }
  for (const note of report.notes) lines.push('', note);
  for (const failure of report.failures) lines.push('', `**Failed** ${failure}`);
  if (results.some((r) => r.external)) {
    lines.push(
      '',
      "Rows of the brokers' own tools (`--ceiling`) are their own reports: not verified, CPU not measured.",
    );
  }
  for (const r of results.filter((x) => x.sendError !== undefined)) {
    lines.push('', `${r.label}: ${r.refused} sends refused: \`${r.sendError}\``);
  }
  for (const r of results.filter((x) => x.stalled !== undefined)) {
    lines.push('', `${r.label}: sending stopped, ${r.stalled}`);
  }
  const versions = new Set(
    report.brokers.filter((b) => b.version !== undefined).map((b) => `${b.broker} ${b.version}`),
  );
  if (versions.size > 0) {
    lines.push('', `Brokers: ${[...versions].join(', ')}.`);
  }
  return `${lines.join('\n')}\n`;
}

/** Text safe inside HTML. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * One self-contained HTML page (no network): the figures as JSON in the page, drawn by inline
 * script as SVG bar charts (end-to-end and produce throughput, end-to-end latency percentiles,
 * CPU per message), one bar per run, plus the table. Each bar is a `rect.bar` with a
 * `data-run` attribute, which the browser test counts.
 */
export function formatHtml(report: SelectionReport): string {
  const results: BenchResult[] = report.brokers.flatMap((b) => b.results);
  // `<` escaped so no figure or label can close the script element.
  const data = JSON.stringify(report).replace(/</g, '\\u003c');
  const title = `mqkit bench: ${report.workload.name}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; }
figure { margin: 0; }
figcaption { font-weight: 600; margin-bottom: .3em; }
table { border-collapse: collapse; margin-top: 1.5em; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.lib-mqkit { fill: #2a6fdb; } .lib-raw { fill: #9aa5b1; } .lib-peer { fill: #e08a2b; } .lib-tool { fill: #7a5cc4; }
text { font-size: 11px; fill: #222; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p id="workload">${escapeHtml(describeWorkload(report.workload))}</p>
<p id="environment"></p>
${report.failures.map((f) => `<p class="failure">Failed ${escapeHtml(f)}</p>`).join('\n')}
<div class="charts" id="charts"></div>
<table id="results"><thead><tr><th>run</th><th>e2e msg/s</th><th>produce msg/s</th><th>e2e p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>lost</th><th>refused</th><th>dup</th><th>out of order</th><th>CPU µs/msg</th></tr></thead><tbody>
${results
  .map((r) => {
    const checked = r.external
      ? ['-', '-', '-', '-', '-']
      : [r.lost, r.refused, r.duplicated, r.outOfOrder, fixed(r.cpuUsPerMessage, 1)];
    const cells = [
      escapeHtml(r.label),
      reported(r, r.endToEndRate, whole(r.endToEndRate)),
      reported(r, r.produceRate, whole(r.produceRate)),
      reportedMs(r, r.endToEnd.p50),
      reportedMs(r, r.endToEnd.p99),
      reportedMs(r, r.endToEnd.p999),
      ...checked,
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  })
  .join('\n')}
</tbody></table>
<script type="application/json" id="data">${data}</script>
<script>
(function () {
  var report = JSON.parse(document.getElementById('data').textContent);
  var runs = [];
  report.brokers.forEach(function (b) { b.results.forEach(function (r) { runs.push(r); }); });
  var env = report.environment;
  document.getElementById('environment').textContent =
    'Node ' + env.node + ', mqkit ' + env.mqkit + ', ' + env.cores + ' cores (' + env.cpu + '), ' + env.date;
  var NS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function libClass(r) {
    if (r.external) return 'lib-tool';
    return r.library === 'mqkit' ? 'lib-mqkit' : r.library.indexOf('raw ') === 0 ? 'lib-raw' : 'lib-peer';
  }
  // A horizontal bar chart: one row per run, one bar per series.
  function chart(id, caption, series, unit) {
    var rowH = 16 * series.length + 8, left = 210, width = 520, top = 8;
    var height = top + runs.length * rowH + 24;
    var max = 0;
    runs.forEach(function (r) { series.forEach(function (s) { max = Math.max(max, s.get(r)); }); });
    if (!(max > 0)) max = 1;
    var fig = document.createElement('figure');
    fig.id = id;
    fig.appendChild(Object.assign(document.createElement('figcaption'), { textContent: caption }));
    var svg = el('svg', { width: left + width + 140, height: height, role: 'img', 'aria-label': caption });
    runs.forEach(function (r, i) {
      var y = top + i * rowH;
      svg.appendChild(el('text', { x: 0, y: y + rowH / 2 + 4 }, r.label));
      series.forEach(function (s, j) {
        var v = s.get(r), w = Math.max(1, (v / max) * width);
        // A broker tool that does not report a figure gets no bar.
        if (r.external && !(v > 0)) {
          svg.appendChild(el('text', { x: left + 4, y: y + j * 16 + 11 }, (s.name ? s.name + ' ' : '') + 'not reported'));
          return;
        }
        var rect = el('rect', {
          'class': 'bar ' + libClass(r), 'data-run': r.label, 'data-series': s.name,
          x: left, y: y + j * 16, width: w, height: 14, 'fill-opacity': 1 - j * 0.25
        });
        rect.appendChild(el('title', {}, r.label + ' ' + s.name + ': ' + v.toFixed(2) + ' ' + unit));
        svg.appendChild(rect);
        svg.appendChild(el('text', { x: left + w + 4, y: y + j * 16 + 11 }, (s.name ? s.name + ' ' : '') + (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2))));
      });
    });
    svg.appendChild(el('line', { x1: left, y1: top, x2: left, y2: height - 20, stroke: '#444' }));
    svg.appendChild(el('text', { x: left, y: height - 6 }, '0 ... ' + (max >= 100 ? Math.round(max).toLocaleString('en-US') : max.toFixed(2)) + ' ' + unit));
    fig.appendChild(svg);
    document.getElementById('charts').appendChild(fig);
  }
  chart('throughput', 'Throughput per broker and library', [
    { name: 'e2e', get: function (r) { return r.endToEndRate; } },
    { name: 'produce', get: function (r) { return r.produceRate; } }
  ], 'msg/s');
  chart('latency', 'End-to-end latency', [
    { name: 'p50', get: function (r) { return r.endToEnd.p50; } },
    { name: 'p99', get: function (r) { return r.endToEnd.p99; } },
    { name: 'p99.9', get: function (r) { return r.endToEnd.p999; } }
  ], 'ms');
  runs = runs.filter(function (r) { return !r.external; });
  chart('cpu', 'Client CPU per message', [
    { name: '', get: function (r) { return r.cpuUsPerMessage; } }
  ], 'µs');
  document.body.setAttribute('data-rendered', String(runs.length));
})();
</script>
</body>
</html>
`;
}

import { isCi, type SelectionHooks } from './select.js';

/**
 * A one-line progress bar on `stream`, redrawn in place: only when the stream is a terminal and
 * not under CI (a log gets no carriage-return noise). Returns no hooks otherwise. `done()`
 * clears the line.
 */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): {
  hooks: SelectionHooks;
  done: () => void;
} {
  if (!stream.isTTY || isCi()) return { hooks: {}, done: () => {} };
  let label = '';
  const width = 30;
  const draw = (sent: number, received: number, total: number) => {
    const of = total > 0 ? total : Math.max(sent, 1);
    const filled = Math.min(width, Math.round((received / of) * width));
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const count = total > 0 ? `${received}/${total}` : `${received} received, ${sent} sent`;
    stream.write(`\r\u001b[2K${label} [${bar}] ${count}`);
  };
  return {
    hooks: {
      onRun: (name) => {
        label = name;
        draw(0, 0, 0);
      },
      onProgress: draw,
    },
    done: () => stream.write('\r\u001b[2K'),
  };
}

import { aptInstall, oneLine, run, tail, which } from './exec-utils.js';

const HINT = 'set MQKIT_TEST_CHROMIUM=/path/to/chromium to use another build';

/**
 * Path of a headless-capable Chromium: `$MQKIT_TEST_CHROMIUM`, else `chromium` or
 * `chromium-browser` on PATH, else Debian's `chromium` package installed with apt-get (root
 * only). Throws one line saying what is missing otherwise.
 */
export async function ensureChromium(log: (line: string) => void = () => {}): Promise<string> {
  const given = process.env.MQKIT_TEST_CHROMIUM;
  if (given) return given;
  const found = (await which('chromium')) ?? (await which('chromium-browser'));
  if (found) return found;
  await aptInstall(['chromium'], 'Chromium', HINT, log);
  const installed = await which('chromium');
  if (!installed) throw new Error(`Chromium: apt-get installed chromium but no chromium is on PATH; ${HINT}`);
  return installed;
}

/**
 * Opens a local page in headless Chromium and returns the DOM after its scripts ran
 * (`--dump-dom`). Root needs `--no-sandbox`; no GPU, no network use is needed by the page.
 */
export async function dumpDom(chromium: string, file: string): Promise<string> {
  const result = await run(
    chromium,
    ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--dump-dom', `file://${file}`],
    { timeoutMs: 60_000 },
  );
  if (result.code !== 0) {
    throw new Error(`Chromium --dump-dom failed (exit ${result.code}): ${oneLine(tail(result.stderr, 3))}`);
  }
  return result.stdout;
}

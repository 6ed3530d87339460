import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { aptInstall, oneLine, run, tail, which } from './exec-utils.js';

const HINT = 'set MQKIT_TEST_CHROMIUM=/path/to/chromium to use another build';

/**
 * Each apt-get step's limit when installing Chromium. Both steps together (8 min) stay below
 * {@link CHROMIUM_INSTALL_TIMEOUT_MS}, so a stuck apt-get fails the hook with its own line
 * instead of the hook timing out.
 */
const APT_STEP_TIMEOUT_MS = 240_000;

/** What a test hook calling {@link ensureChromium} should allow: both apt-get steps, and a margin. */
export const CHROMIUM_INSTALL_TIMEOUT_MS = 2 * APT_STEP_TIMEOUT_MS + 60_000;

/**
 * Path of a headless-capable Chromium: `$MQKIT_TEST_CHROMIUM`, else `chromium` or
 * `chromium-browser` on PATH, else Debian's `chromium` package installed with apt-get (root
 * only, each step bounded by {@link APT_STEP_TIMEOUT_MS}). Throws one line saying what is
 * missing otherwise.
 */
export async function ensureChromium(log: (line: string) => void = () => {}): Promise<string> {
  const given = process.env.MQKIT_TEST_CHROMIUM;
  if (given) return given;
  const found = (await which('chromium')) ?? (await which('chromium-browser'));
  if (found) return found;
  await aptInstall(['chromium'], 'Chromium', HINT, log, APT_STEP_TIMEOUT_MS);
  const installed = await which('chromium');
  if (!installed) throw new Error(`Chromium: apt-get installed chromium but no chromium is on PATH; ${HINT}`);
  return installed;
}

/**
 * Opens a local page in headless Chromium and returns the DOM after its scripts ran
 * (`--dump-dom`). Root needs `--no-sandbox`; no GPU, no network use is needed by the page.
 * Each call gets a fresh profile: with the default one, a locked or running profile can hand
 * the page to another instance and exit 0 with an empty DOM.
 */
export async function dumpDom(chromium: string, file: string): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'mqkit-chromium-'));
  try {
    const result = await run(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        '--dump-dom',
        pathToFileURL(file).href,
      ],
      { timeoutMs: 60_000 },
    );
    if (result.code !== 0) {
      throw new Error(`Chromium --dump-dom failed (exit ${result.code}): ${oneLine(tail(result.stderr, 3))}`);
    }
    return result.stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

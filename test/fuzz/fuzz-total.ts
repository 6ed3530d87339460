import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Line {
  file: string | undefined;
  name: string;
  runs: number;
  planned: number;
}

/**
 * Global setup of `npm run test:fuzz`: at the end, prints the cases run over all files (each
 * property appends a line to MQKIT_FUZZ_TALLY_FILE, see harness.ts) and, with
 * MQKIT_FUZZ_STRICT=1, fails the run when a property ran fewer cases than it planned, or when
 * every fuzz file ran (not a run of chosen files) and the total falls short of MQKIT_FUZZ_TARGET
 * (the 10,000 cases the full run promises).
 */
export default function setup(): () => void {
  const file = process.env.MQKIT_FUZZ_TALLY_FILE;
  if (file === undefined) return () => {};
  rmSync(file, { force: true });
  return () => {
    let lines: Line[] = [];
    try {
      lines = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Line);
    } catch {
      // No file: no property ran (a filtered run, or every file failed before its first one).
    }
    rmSync(file, { force: true });
    const total = lines.reduce((sum, l) => sum + l.runs, 0);
    const planned = lines.reduce((sum, l) => sum + l.planned, 0);
    const short = lines.filter((l) => l.runs < l.planned);
    const target = Number(process.env.MQKIT_FUZZ_TARGET ?? 0);
    console.log(
      `[mqkit fuzz] all files: ${total} of ${planned} planned cases in ${lines.length} properties${target > 0 ? `, target ${target}` : ''}${short.length > 0 ? `; cut off: ${short.map((l) => `${l.name} ${l.runs}/${l.planned}`).join(', ')}` : ''}`,
    );
    if (process.env.MQKIT_FUZZ_STRICT !== '1') return;
    if (short.length > 0) throw new Error(`fuzz: ${short.length} properties ran fewer cases than planned`);
    const here = dirname(fileURLToPath(import.meta.url));
    const all = readdirSync(here).filter((f) => f.endsWith('.test.ts'));
    const ran = new Set(lines.map((l) => basename(l.file ?? '')));
    // Every fuzz file checks properties: one missing means a run of chosen files or tests,
    // which has no total to hold it to.
    if (all.some((f) => !ran.has(f))) return;
    if (total < target) throw new Error(`fuzz: ${total} cases in all, fewer than the target of ${target}`);
  };
}

// Adds lock entries for optional platform packages that `npm install` left out.
//
// The registry mirror our machines use lacks some platform builds (e.g. darwin or musl
// binaries of biome, rollup and esbuild at the versions we use). `npm install` then omits them
// from package-lock.json, and `npm ci` refuses the lock as out of sync. An entry with just the
// version and `optional: true` satisfies the check; npm skips such a package on platforms it
// does not fit, and fetches it normally where it does. Run after `npm install`:
//   node scripts/complete-lockfile.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
const added = [];
for (const [location, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${location ? `${location}/` : ''}node_modules/${name}`;
    if (packages[nested] || packages[`node_modules/${name}`]) continue;
    packages[`node_modules/${name}`] = { version, dev: entry.dev ?? false, optional: true };
    added.push(`${name}@${version}`);
  }
}
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(
  added.length ? `added ${added.length} entries: ${added.join(' ')}\n` : 'lock file complete\n',
);

#!/usr/bin/env node
import { handlesInterrupt, runCli } from './cli.js';

const argv = process.argv.slice(2);
// Ctrl-C ends a `lag --watch` cleanly (exit 0); a second one exits at once. Other commands
// keep Node's default: one Ctrl-C exits.
const interrupted = new AbortController();
if (handlesInterrupt(argv)) {
  process.once('SIGINT', () => {
    interrupted.abort();
    process.once('SIGINT', () => process.exit(130));
  });
}

runCli(argv, {
  write: (text) => process.stdout.write(text),
  tty: process.stdout.isTTY === true,
  signal: interrupted.signal,
}).then(({ code, stdout, stderr }) => {
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exit(code);
});

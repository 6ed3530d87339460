#!/usr/bin/env node
import { runCli } from './cli.js';

// Ctrl-C ends a `lag --watch` cleanly (exit 0); a second one exits at once.
const interrupted = new AbortController();
process.once('SIGINT', () => {
  interrupted.abort();
  process.once('SIGINT', () => process.exit(130));
});

runCli(process.argv.slice(2), {
  write: (text) => process.stdout.write(text),
  tty: process.stdout.isTTY === true,
  signal: interrupted.signal,
}).then(({ code, stdout, stderr }) => {
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exit(code);
});

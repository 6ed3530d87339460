#!/usr/bin/env node
import { runCli } from './cli.js';

runCli(process.argv.slice(2)).then(({ code, stdout, stderr }) => {
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exit(code);
});

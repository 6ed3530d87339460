// Runs a command while other processes keep CPU cores busy, the way a shared CI machine is:
// timers fire late, round trips take longer, and tests that race a clock show it.
//
//   node scripts/busy-core.mjs [--cores N] <command> [args...]
//   npm run test:busy                      # npm test with one core busy
//
// Each spinner is a child process looping on one core until the command ends (or this
// script dies: spinners check for their parent between slices of work). Exits with the
// command's status.
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
let cores = 1;
if (args[0] === '--cores') {
  cores = Number(args[1]);
  args.splice(0, 2);
  if (!Number.isInteger(cores) || cores < 1 || cores > 64) {
    process.stderr.write('busy-core: --cores must be an integer from 1 to 64\n');
    process.exit(2);
  }
}
if (args.length === 0) {
  process.stderr.write('usage: node scripts/busy-core.mjs [--cores N] <command> [args...]\n');
  process.exit(2);
}

// About 10 ms of work per slice, then a check that the parent is still there.
const spin = `
const parent = ${process.pid};
for (;;) {
  const until = Date.now() + 10;
  while (Date.now() < until) {}
  if (process.ppid !== parent) process.exit(0);
}`;
const spinners = Array.from({ length: cores }, () =>
  spawn(process.execPath, ['-e', spin], { stdio: 'ignore' }),
);
const stopSpinners = () => {
  for (const s of spinners) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
};

process.stderr.write(`busy-core: ${cores} core(s) kept busy while running: ${args.join(' ')}\n`);
const command = spawn(args[0], args.slice(1), { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => command.kill(signal));
}
command.on('error', (error) => {
  stopSpinners();
  process.stderr.write(`busy-core: cannot run ${args[0]}: ${error.message}\n`);
  process.exit(127);
});
command.on('exit', (code, signal) => {
  stopSpinners();
  process.exit(code ?? (signal === null ? 1 : 128));
});

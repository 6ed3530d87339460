import { oneLine } from './exec-utils.js';
import { waitUntil } from './net-utils.js';
/** A server made available for tests by one of the `ensure*` functions. */
export interface EnsuredService {
  /** Connection URL for clients, always on 127.0.0.1 unless taken from an env variable. */
  url: string;
  /** True only when this code started the server; `stop()` is then the only thing that stops it. */
  started: boolean;
  /** Stops the server if `started`, else does nothing. Idempotent. */
  stop(): Promise<void>;
}

/** Options shared by the `ensure*` functions. */
export interface EnsureOptions {
  /** Receives progress lines (installs, starts, plugin changes); defaults to a no-op. */
  log?: (line: string) => void;
  /** How long to wait for a server this code starts to answer; defaults to 120 000 ms. */
  startTimeoutMs?: number;
}

/** An {@link EnsuredService} for a server this code did not start. */
export function reused(url: string): EnsuredService {
  return { url, started: false, stop: async () => {} };
}

/** An {@link EnsuredService} whose `stop` runs `stopFn` once. */
export function startedService(url: string, stopFn: () => Promise<void>): EnsuredService {
  let stopping: Promise<void> | undefined;
  return {
    url,
    started: true,
    stop: () => {
      stopping ??= stopFn();
      return stopping;
    },
  };
}

/** Reads an env variable, treating empty and whitespace-only values as unset. */
export function envUrl(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value && value.length > 0 ? value : undefined;
}

/** Message of an unknown thrown value, on one line. */
export function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').trim();
}

/**
 * Polls `problem` (undefined or '' when the server answers) until it clears; past `timeoutMs`
 * throws one line: `failure`, the last problem seen, and `hint` (how to provide the server).
 */
export async function waitUntilAnswering(
  name: string,
  problem: () => Promise<string | undefined>,
  options: { timeoutMs: number; intervalMs: number; failure: string; hint: string },
): Promise<void> {
  let last = '';
  try {
    await waitUntil(
      name,
      async () => {
        last = (await problem()) ?? '';
        return last === '';
      },
      { timeoutMs: options.timeoutMs, intervalMs: options.intervalMs },
    );
  } catch {
    throw new Error(
      `${options.failure} within ${Math.round(options.timeoutMs / 1000)}s (${oneLine(last, 120)}); ${options.hint}`,
    );
  }
}

/** Resolves true after `ms`, or false as soon as any of `signals` aborts (at once if one already has). */
export function sleep(ms: number, ...signals: AbortSignal[]): Promise<boolean> {
  if (signals.some((s) => s.aborted)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Resolves true when `promise` fulfils within `ms`, false when the time runs out first; rejects
 * if it rejects first. A rejection after the time ran out is dropped, not left unhandled.
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const fulfilled = promise.then(() => true);
  fulfilled.catch(() => {});
  try {
    return await Promise.race([
      fulfilled,
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `promise`'s outcome, or a rejection with `timeoutError()` once `ms` pass first; the timer is
 * cleared either way. A rejection of `promise` after the time ran out is dropped, not left
 * unhandled (the work it stands for may still complete: say so in the error).
 */
export async function withinTime<T>(promise: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  promise.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeoutError()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

import { ConfigError } from '../../core/errors.js';
import { intOption } from '../../core/options.js';

/** The backlog thresholds of a pattern that switches state on the backlog and back. */
export interface WaterMarks {
  highWater: number;
  lowWater: number;
}

/**
 * Checks the `highWater` and `lowWater` options of `overflow` and `shaveProducer`: `highWater`
 * is required, an integer of at least 1; `lowWater` an integer from 0 to `highWater - 1`,
 * default `highWater / 2` rounded down. Throws `ConfigError` at `prefix.highWater` or
 * `prefix.lowWater`, `highWater` first.
 */
export function waterMarks(options: { highWater?: unknown; lowWater?: unknown }, prefix: string): WaterMarks {
  const highWater = intOption(options.highWater, `${prefix}.highWater`, 1, Number.NaN);
  if (Number.isNaN(highWater)) throw new ConfigError(`${prefix}.highWater`, 'is required');
  const lowWater = intOption(
    options.lowWater,
    `${prefix}.lowWater`,
    0,
    Math.floor(highWater / 2),
    highWater - 1,
  );
  return { highWater, lowWater };
}

/**
 * Counts what a consumer saw against what producers sent: every body carries its producer id
 * and that producer's sequence number, so each delivery is checked, not sampled.
 *
 * - duplicated: a (producer, sequence) delivered more than once (every extra delivery counts);
 * - lost: sent, not refused (acknowledged, or still unsettled when the run ended) and never
 *   delivered, counted by {@link Verifier.lost}; a send the client or broker refused is counted
 *   apart (`refused`), and a refused message that arrived anyway is neither lost nor missing;
 * - out of order: with keys, a delivery whose sequence is below the highest already delivered
 *   for the same producer and key (keys are per producer: producers do not order each other).
 *
 * Not safe for concurrent use from worker threads; a run's handlers all call it from the one
 * event loop.
 */
export class Verifier {
  readonly #seen: Uint8Array[] = [];
  /** Per producer, the sequences whose send failed: `[first, count]` ranges. */
  readonly #refused: [number, number, number][] = [];
  /** Highest sequence delivered per producer and key index. */
  readonly #lastByKey: Int32Array[] = [];
  readonly #keys: number;
  unique = 0;
  duplicated = 0;
  outOfOrder = 0;

  /** @param keys - keys of the workload (0: order is not checked); key index is `sequence % keys`. */
  constructor(keys: number) {
    this.#keys = keys;
  }

  /** Records one delivery; returns false for a duplicate. */
  record(producer: number, sequence: number): boolean {
    let seen = this.#seen[producer];
    if (seen === undefined) {
      seen = new Uint8Array(1024);
      this.#seen[producer] = seen;
    }
    const byte = sequence >>> 3;
    if (byte >= seen.length) {
      let length = seen.length;
      while (length <= byte) length *= 2;
      const grown = new Uint8Array(length);
      grown.set(seen);
      seen = grown;
      this.#seen[producer] = seen;
    }
    const bit = 1 << (sequence & 7);
    if ((seen[byte]! & bit) !== 0) {
      this.duplicated++;
      return false;
    }
    seen[byte] = seen[byte]! | bit;
    this.unique++;
    if (this.#keys > 0) {
      let last = this.#lastByKey[producer];
      if (last === undefined) {
        last = new Int32Array(this.#keys).fill(-1);
        this.#lastByKey[producer] = last;
      }
      const key = sequence % this.#keys;
      if (sequence < last[key]!) this.outOfOrder++;
      else last[key] = sequence;
    }
    return true;
  }

  /** Records that the send of `count` messages of `producer` from `first` failed. */
  refuse(producer: number, first: number, count: number): void {
    this.#refused.push([producer, first, count]);
  }

  /** Sent messages, not refused, never delivered. */
  lost(sent: number): number {
    let refusedMissing = 0;
    for (const [producer, first, count] of this.#refused) {
      for (let sequence = first; sequence < first + count; sequence++) {
        if (!this.#delivered(producer, sequence)) refusedMissing++;
      }
    }
    return Math.max(0, sent - this.unique - refusedMissing);
  }

  #delivered(producer: number, sequence: number): boolean {
    const seen = this.#seen[producer];
    const byte = sequence >>> 3;
    return seen !== undefined && byte < seen.length && (seen[byte]! & (1 << (sequence & 7))) !== 0;
  }
}

/** Key of a message: the key index its producer's sequence gives, or none without keys. */
export function keyOf(sequence: number, keys: number): string | undefined {
  return keys > 0 ? `key-${sequence % keys}` : undefined;
}

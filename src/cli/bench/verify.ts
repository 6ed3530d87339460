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
  /** Per producer, the sequences whose send failed (a bit each, as `#seen`). */
  readonly #refused: Uint8Array[] = [];
  /** Highest sequence delivered per producer and key index. */
  readonly #lastByKey: Int32Array[] = [];
  readonly #keys: number;
  unique = 0;
  /** Distinct deliveries of messages whose send failed. */
  refusedDelivered = 0;
  duplicated = 0;
  outOfOrder = 0;

  /** @param keys - keys of the workload (0: order is not checked); key index is `sequence % keys`. */
  constructor(keys: number) {
    this.#keys = keys;
  }

  /** Records one delivery; returns false for a duplicate. */
  record(producer: number, sequence: number): boolean {
    const seen = bitsFor(this.#seen, producer, sequence);
    const byte = sequence >>> 3;
    const bit = 1 << (sequence & 7);
    if ((seen[byte]! & bit) !== 0) {
      this.duplicated++;
      return false;
    }
    seen[byte] = seen[byte]! | bit;
    this.unique++;
    if (hasBit(this.#refused, producer, sequence)) this.refusedDelivered++;
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
    for (let sequence = first; sequence < first + count; sequence++) {
      const bits = bitsFor(this.#refused, producer, sequence);
      bits[sequence >>> 3] = bits[sequence >>> 3]! | (1 << (sequence & 7));
      if (hasBit(this.#seen, producer, sequence)) this.refusedDelivered++;
    }
  }

  /** Distinct deliveries of messages whose send did not fail. */
  get acceptedDelivered(): number {
    return this.unique - this.refusedDelivered;
  }

  /** Sent messages, not refused (`refused` of them), never delivered. */
  lost(sent: number, refused: number): number {
    return Math.max(0, sent - refused - this.acceptedDelivered);
  }
}

/** The bit array of `producer` in `arrays`, grown to hold `sequence`. */
function bitsFor(arrays: Uint8Array[], producer: number, sequence: number): Uint8Array {
  let bits = arrays[producer];
  if (bits === undefined) {
    bits = new Uint8Array(1024);
    arrays[producer] = bits;
  }
  const byte = sequence >>> 3;
  if (byte >= bits.length) {
    let length = bits.length;
    while (length <= byte) length *= 2;
    const grown = new Uint8Array(length);
    grown.set(bits);
    bits = grown;
    arrays[producer] = bits;
  }
  return bits;
}

function hasBit(arrays: readonly Uint8Array[], producer: number, sequence: number): boolean {
  const bits = arrays[producer];
  const byte = sequence >>> 3;
  return bits !== undefined && byte < bits.length && (bits[byte]! & (1 << (sequence & 7))) !== 0;
}

/** Key of a message: the key index its producer's sequence gives, or none without keys. */
export function keyOf(sequence: number, keys: number): string | undefined {
  return keys > 0 ? `key-${sequence % keys}` : undefined;
}

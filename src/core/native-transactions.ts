import type { Headers, OutgoingMessage } from './message.js';

/**
 * Where a producer offers its broker's own transactional messages (RocketMQ's half messages
 * with check-back), `halfMessages` uses them instead of the PostgreSQL table: the property
 * under this symbol is a {@link NativeTransactions}.
 */
export const NATIVE_TRANSACTIONS: unique symbol = Symbol.for('mqkit.nativeTransactions');

/** A half message as the broker hands it to a check. */
export interface NativeHalf {
  id: string;
  topic: string;
  key: string | undefined;
  tag: string | undefined;
  /** Application headers. */
  headers: Headers;
  contentType: string;
  payload: Uint8Array;
  /** Checks so far, this one included (the broker's count). */
  checks: number;
}

export type NativeDecision = 'commit' | 'rollback' | 'unknown';

/** A producer's access to the broker's transactional messages. */
export interface NativeTransactions {
  /**
   * Joins producer group `group`: the broker may ask any live member of it (any process) about
   * a half message whose sender did not decide (`check`); a throw counts as 'unknown'.
   */
  open(group: string, check: (half: NativeHalf) => Promise<NativeDecision>): NativeTransactionGroup;
}

export interface NativeTransactionGroup {
  /**
   * Makes this process a producer of `topics` now, so that it answers checks of their half
   * messages before it sent any (the broker asks only producers of a message's topic).
   */
  publishTo(topics: readonly string[]): Promise<void>;
  /**
   * Stores `message` as a half message (invisible to consumers), then asks `decide` and ends
   * the transaction with its answer ('unknown': left to the broker's checks). While `decide`
   * runs, a check of this message is answered 'unknown' (the sender decides). Resolves with the
   * message id once sent; rejects (nothing stored) when the send failed, before `decide` ran.
   * When the decision could not be delivered, resolves with `decision` 'unknown' and the error
   * in `endError`: the broker's checks decide.
   */
  send(
    message: OutgoingMessage<unknown>,
    decide: (id: string) => Promise<NativeDecision>,
  ): Promise<{ id: string; decision: NativeDecision; endError?: unknown }>;
  /** Leaves the group: this process answers no more checks. */
  close(): Promise<void>;
}

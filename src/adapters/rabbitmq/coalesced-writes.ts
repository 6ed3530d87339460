import type { ChannelModel } from 'amqplib';

/** amqplib's connection internals this relies on (amqplib 0.10 to 2.x). */
interface AmqplibConnection {
  muxer?: { _readIncoming?: () => void };
  stream?: { cork?: () => void; uncork?: () => void };
}

/**
 * Makes one amqplib connection hand each round of frame writes to the socket as one `writev`.
 *
 * amqplib's multiplexer moves frames from its channels to the socket one `write` at a time
 * (one per published message and per ack), and an uncorked write to a TCP socket is one system
 * call: at thousands of messages a second those calls are the largest single share of the
 * client's CPU. Corking the socket for the length of a round queues the round's frames and
 * uncorking passes them to the kernel together. Nothing else changes: the frames, their order,
 * and back-pressure (a write past the socket's high-water mark still returns false, and the
 * multiplexer waits for 'drain' as before).
 *
 * Relies on amqplib's `connection.muxer._readIncoming` and `connection.stream`; where they are
 * not there (another amqplib), nothing is changed and false is returned. Off with the
 * environment variable `MQKIT_AMQPLIB_COALESCE=off`.
 */
export function coalesceWrites(model: ChannelModel): boolean {
  if (process.env.MQKIT_AMQPLIB_COALESCE === 'off') return false;
  const connection = (model as unknown as { connection?: AmqplibConnection }).connection;
  const muxer = connection?.muxer;
  const stream = connection?.stream;
  const readIncoming = muxer?._readIncoming;
  if (
    muxer === undefined ||
    typeof readIncoming !== 'function' ||
    typeof stream?.cork !== 'function' ||
    typeof stream.uncork !== 'function'
  ) {
    return false;
  }
  const cork = stream.cork.bind(stream);
  const uncork = stream.uncork.bind(stream);
  muxer._readIncoming = function roundInOneWrite(this: unknown) {
    cork();
    try {
      readIncoming.call(this);
    } finally {
      uncork();
    }
  };
  return true;
}

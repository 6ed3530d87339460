import { connect, type Socket } from 'node:net';

/** Request codes of RocketMQ's remoting protocol used by the adapter's admin calls. */
export const CODE = {
  queryConsumerOffset: 14,
  updateConsumerOffset: 15,
  updateAndCreateTopic: 17,
  searchOffsetByTimestamp: 29,
  getMaxOffset: 30,
  getMinOffset: 31,
  getRouteInfoByTopic: 105,
  deleteTopicInBroker: 215,
  deleteTopicInNamesrv: 216,
  getBrokerClusterInfo: 106,
  updateAndCreateSubscriptionGroup: 200,
  deleteSubscriptionGroup: 207,
  getSubscriptionGroupConfig: 352,
} as const;

/** Response codes the adapter tells apart. */
export const RESPONSE = { success: 0, topicNotExist: 17, queryNotFound: 22, subscriptionGroupNotExist: 26 };

/** A decoded remoting response. */
export interface RemotingResponse {
  code: number;
  remark: string | undefined;
  extFields: Record<string, string>;
  body: Buffer | undefined;
}

/** Largest frame accepted from a server: a bigger length is a corrupt stream, not a response. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

interface Pending {
  resolve: (r: RemotingResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A minimal client of RocketMQ's remoting protocol (the TCP protocol of the name server and the
 * broker), for what the gRPC proxy of RocketMQ 5.3 does not offer: creating topics and
 * consumer groups, and reading or setting consumer offsets. Frames: total length (4 bytes),
 * serialize type (1 byte, 0 = JSON) and header length (3 bytes), the JSON header, the body.
 * One connection per address, requests matched to responses by `opaque`.
 */
export class RemotingClient {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private buffer: Buffer = Buffer.alloc(0);
  private opaque = 0;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(
    readonly address: string,
    private readonly timeoutMs: number,
  ) {}

  async request(
    code: number,
    extFields: Record<string, string | number | boolean> = {},
    body?: Buffer,
  ): Promise<RemotingResponse> {
    const socket = await this.open();
    const opaque = ++this.opaque;
    const header = Buffer.from(
      JSON.stringify({
        code,
        language: 'JAVA',
        version: 500,
        opaque,
        flag: 0,
        extFields: Object.fromEntries(Object.entries(extFields).map(([k, v]) => [k, String(v)])),
      }),
    );
    const bodyLength = body?.length ?? 0;
    const frame = Buffer.alloc(8 + header.length + bodyLength);
    frame.writeUInt32BE(4 + header.length + bodyLength, 0);
    frame.writeUInt32BE(header.length & 0xffffff, 4);
    header.copy(frame, 8);
    body?.copy(frame, 8 + header.length);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(opaque);
        reject(new Error(`no answer from ${this.address} within ${this.timeoutMs} ms (request ${code})`));
        // A late answer would be matched to nothing, and a server that does not answer may never:
        // the next request opens a new connection.
        if (this.socket === socket) socket.destroy();
      }, this.timeoutMs);
      this.pending.set(opaque, { resolve, reject, timer });
      socket.write(frame);
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.fail(new Error(`connection to ${this.address} closed`));
  }

  private open(): Promise<Socket> {
    if (this.closed) return Promise.reject(new Error(`connection to ${this.address} closed`));
    if (this.socket !== undefined && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const [host, port] = splitAddress(this.address);
      const socket = connect({ host, port });
      socket.setNoDelay(true);
      const timer = setTimeout(
        () => socket.destroy(new Error(`cannot connect to ${this.address}`)),
        this.timeoutMs,
      );
      socket.once('connect', () => {
        clearTimeout(timer);
        this.socket = socket;
        this.buffer = Buffer.alloc(0);
        resolve(socket);
      });
      socket.on('data', (chunk: Buffer) => {
        // Runs in the socket's listener: a throw here would be an uncaught exception in the
        // application. A stream that cannot be parsed is closed and its requests fail.
        try {
          this.onData(chunk);
        } catch (error) {
          socket.destroy();
          this.fail(new Error(`unreadable response from ${this.address}: ${(error as Error).message}`));
        }
      });
      // `on`, not `once`: a second error on a dying socket must not be an unhandled 'error'.
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
        this.fail(err);
      });
      socket.once('close', () => {
        if (this.socket === socket) this.socket = undefined;
        this.fail(new Error(`connection to ${this.address} closed`));
      });
      socket.unref();
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private fail(error: Error): void {
    for (const [opaque, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(opaque);
      p.reject(error);
    }
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (length < 4 || length > MAX_FRAME_BYTES) throw new Error(`frame length ${length}`);
      if (this.buffer.length < 4 + length) return;
      const frame = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      const headerLength = frame.readUInt32BE(0) & 0xffffff;
      if (headerLength > length - 4) throw new Error(`header length ${headerLength} in a frame of ${length}`);
      const header = JSON.parse(frame.subarray(4, 4 + headerLength).toString('utf8')) as {
        code: number;
        opaque: number;
        remark?: string;
        extFields?: Record<string, string>;
      };
      const body =
        frame.length > 4 + headerLength ? Buffer.from(frame.subarray(4 + headerLength)) : undefined;
      const p = this.pending.get(header.opaque);
      if (p === undefined) continue;
      this.pending.delete(header.opaque);
      clearTimeout(p.timer);
      p.resolve({ code: header.code, remark: header.remark, extFields: header.extFields ?? {}, body });
    }
  }
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

/**
 * Parses a remoting JSON body. RocketMQ writes maps with integer keys unquoted
 * (`{"brokerAddrs":{0:"127.0.0.1:10911"}}`), which JSON.parse refuses: they are quoted first.
 */
export function parseRemotingJson<T>(body: Buffer | undefined): T {
  const text = (body ?? Buffer.from('{}')).toString('utf8').replace(/([{,])(-?\d+):/g, '$1"$2":');
  return JSON.parse(text) as T;
}

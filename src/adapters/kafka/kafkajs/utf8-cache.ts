/**
 * Strings decoded from UTF-8 bytes that repeat from record to record (header names, a
 * content type), kept by their bytes: a cached one is found by comparing bytes in JavaScript,
 * where decoding is a native call and a new string per header of every record. Holds at most
 * `size` strings of at most `maxBytes` bytes each, the first ones met; anything else is decoded
 * every time, as before. Same strings as `buffer.toString('utf8', start, end)`.
 */
export class Utf8Cache {
  private readonly bytes: Buffer[] = [];
  private readonly strings: string[] = [];

  constructor(
    private readonly size: number,
    private readonly maxBytes: number,
  ) {}

  read(buffer: Buffer, start: number, end: number): string {
    const length = end - start;
    if (length > this.maxBytes) return buffer.toString('utf8', start, end);
    const cached = this.bytes;
    next: for (let i = 0; i < cached.length; i++) {
      const bytes = cached[i] as Buffer;
      if (bytes.length !== length) continue;
      for (let j = 0; j < length; j++) if (bytes[j] !== buffer[start + j]) continue next;
      return this.strings[i] as string;
    }
    const text = buffer.toString('utf8', start, end);
    if (cached.length < this.size) {
      cached.push(Buffer.from(buffer.subarray(start, end)));
      this.strings.push(text);
    }
    return text;
  }
}

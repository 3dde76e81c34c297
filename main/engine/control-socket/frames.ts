// OpenSSH's multiplexing protocol on the wire (openssh-portable PROTOCOL.mux, checked against
// mux.c): every message is `uint32 length` + `uint32 type` + body. Here are its numbers, the
// one frame parser (bytes and passed descriptors in, whole frames out), a bounds-checked body
// reader, and the one writer. Nothing here does I/O.

export const MUX_VERSION = 4;

export const MSG = {
  HELLO: 0x00000001,
  C_NEW_SESSION: 0x10000002,
  C_ALIVE_CHECK: 0x10000004,
  C_TERMINATE: 0x10000005,
  C_OPEN_FWD: 0x10000006,
  C_CLOSE_FWD: 0x10000007,
  C_NEW_STDIO_FWD: 0x10000008,
  C_STOP_LISTENING: 0x10000009,
  C_PROXY: 0x1000000f,
  S_OK: 0x80000001,
  S_PERMISSION_DENIED: 0x80000002,
  S_FAILURE: 0x80000003,
  S_EXIT_MESSAGE: 0x80000004,
  S_ALIVE: 0x80000005,
  S_SESSION_OPENED: 0x80000006,
  S_REMOTE_PORT: 0x80000007,
  S_TTY_ALLOC_FAIL: 0x80000008,
  S_PROXY: 0x8000000f,
} as const;

export const FWD = { LOCAL: 1, REMOTE: 2, DYNAMIC: 3 } as const;

/**
 * A HELLO extension of Hitch's own, sent by `hitch exec`: a command that dies of signal n ends
 * with an EXIT_MESSAGE of 128 + n, as a shell reports it. (For a signal OpenSSH's master sends
 * no exit message, and its client exits 255: stock clients, which never ask, still get that.)
 */
export const EXIT_SIGNAL_EXTENSION = 'exit-signal@hitch';

/** NEW_SESSION's escape character when the client has none. */
export const NO_ESCAPE = 0xffffffff;

/** A port of (unsigned) -2: the host field is a Unix socket path instead. */
export const PORT_STREAMLOCAL = 0xfffffffe;

/** Larger frames are refused (OpenSSH's mux master allows 256 KiB too). */
export const MAX_FRAME = 256 * 1024;

/** Input that breaks the protocol: the connection is closed, with this as the log line's reason. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export interface Frame {
  type: number;
  /** The body after the type. */
  body: Buffer;
}

/**
 * Splits the byte stream of one control connection into frames. A stock client passes each
 * descriptor as one byte with an SCM_RIGHTS message right after the frame that asks for it
 * (NEW_SESSION: stdin, stdout, stderr), so the parser also pairs those bytes with the
 * descriptors received beside the stream.
 */
export class FrameParser {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly fds: number[] = [];

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  pushFds(fds: number[]): void {
    this.fds.push(...fds);
  }

  /** Descriptors received and not yet taken by a request. */
  get heldFds(): number {
    return this.fds.length;
  }

  /** Bytes received and not yet parsed. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Every byte not yet parsed (when the connection stops speaking frames: proxy mode). */
  takeRest(): Buffer {
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  /** Descriptors received that no frame has asked for: the caller closes them. */
  takeStrayFds(): number[] {
    return this.fds.splice(0);
  }

  /** The next whole frame, or null until more bytes arrive. Throws ProtocolError. */
  next(): Frame | null {
    if (this.buffer.length < 4) return null;
    const length = this.buffer.readUInt32BE(0);
    if (length < 4) throw new ProtocolError(`frame of ${length} bytes has no room for its type`);
    if (length > MAX_FRAME) throw new ProtocolError(`frame of ${length} bytes exceeds ${MAX_FRAME}`);
    if (this.buffer.length < 4 + length) return null;
    const type = this.buffer.readUInt32BE(4);
    const body = this.buffer.subarray(8, 4 + length);
    this.buffer = this.buffer.subarray(4 + length);
    return { type, body: Buffer.from(body) };
  }

  /**
   * The `count` descriptors that follow a frame, one byte each; null until those bytes are
   * here. A byte that came without its descriptor is a ProtocolError: the kernel delivers a
   * descriptor no later than the byte it was sent with.
   */
  takeFds(count: number): number[] | null {
    if (this.buffer.length < count) return null;
    if (this.fds.length < count) throw new ProtocolError(`expected ${count} file descriptors, received ${this.fds.length}`);
    this.buffer = this.buffer.subarray(count);
    return this.fds.splice(0, count);
  }
}

/** Reads a frame body field by field; running past its end is a ProtocolError. */
export class MessageReader {
  private offset = 0;

  constructor(private readonly body: Buffer) {}

  get remaining(): number {
    return this.body.length - this.offset;
  }

  u32(what = 'uint32'): number {
    if (this.remaining < 4) throw new ProtocolError(`truncated message: no ${what}`);
    const v = this.body.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** An SSH string as bytes. */
  bytes(what = 'string'): Buffer {
    const length = this.u32(`${what} length`);
    if (length > this.remaining) throw new ProtocolError(`truncated message: ${what} of ${length} bytes, ${this.remaining} left`);
    const v = this.body.subarray(this.offset, this.offset + length);
    this.offset += length;
    return v;
  }

  /** A text string; like OpenSSH's sshbuf_get_cstring, one holding a NUL byte is malformed. */
  cstring(what = 'string'): string {
    const b = this.bytes(what);
    if (b.includes(0)) throw new ProtocolError(`malformed message: ${what} contains a NUL byte`);
    return b.toString('utf8');
  }

  skipString(what = 'string'): void {
    this.bytes(what);
  }

  /** Requires that nothing follows. */
  end(what: string): void {
    if (this.remaining !== 0) throw new ProtocolError(`malformed ${what}: ${this.remaining} unexpected trailing bytes`);
  }
}

/** SSH wire fields (RFC 4251) appended in order; subclasses frame them for their protocol. */
export class FieldWriter {
  protected readonly parts: Buffer[] = [];
  protected length = 0;

  u8(v: number): this {
    return this.add(Buffer.from([v & 0xff]));
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.add(b);
  }

  string(v: string | Buffer): this {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    this.u32(b.length);
    return this.add(b);
  }

  protected add(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
}

/** Builds one mux frame: its type, then fields, length prefixed by `frame()`. */
export class MessageWriter extends FieldWriter {
  constructor(type: number) {
    super();
    this.u32(type);
  }

  frame(): Buffer {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(this.length);
    return Buffer.concat([head, ...this.parts], 4 + this.length);
  }
}

// The replies the master sends, built in one place.
export const reply = {
  hello: (): Buffer => new MessageWriter(MSG.HELLO).u32(MUX_VERSION).frame(),
  ok: (rid: number): Buffer => new MessageWriter(MSG.S_OK).u32(rid).frame(),
  failure: (rid: number, reason: string): Buffer => new MessageWriter(MSG.S_FAILURE).u32(rid).string(reason).frame(),
  permissionDenied: (rid: number, reason: string): Buffer => new MessageWriter(MSG.S_PERMISSION_DENIED).u32(rid).string(reason).frame(),
  alive: (rid: number, pid: number): Buffer => new MessageWriter(MSG.S_ALIVE).u32(rid).u32(pid).frame(),
  sessionOpened: (rid: number, sessionId: number): Buffer => new MessageWriter(MSG.S_SESSION_OPENED).u32(rid).u32(sessionId).frame(),
  remotePort: (rid: number, port: number): Buffer => new MessageWriter(MSG.S_REMOTE_PORT).u32(rid).u32(port).frame(),
  exitMessage: (sessionId: number, status: number): Buffer => new MessageWriter(MSG.S_EXIT_MESSAGE).u32(sessionId).u32(status).frame(),
  ttyAllocFail: (sessionId: number): Buffer => new MessageWriter(MSG.S_TTY_ALLOC_FAIL).u32(sessionId).frame(),
  proxy: (rid: number): Buffer => new MessageWriter(MSG.S_PROXY).u32(rid).frame(),
};

/** A message type as OpenSSH logs it, for log lines. */
export function typeName(type: number): string {
  const name = Object.entries(MSG).find(([, v]) => v === type)?.[0];
  return name ?? `0x${type.toString(16).padStart(8, '0')}`;
}

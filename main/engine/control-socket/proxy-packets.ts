// The wire format of proxy mode (`ssh -O proxy`), as PROTOCOL.mux section 9 describes it and
// OpenSSH's packet.c speaks it (ssh_packet_send_mux, ssh_packet_read_poll2_mux): after
// MUX_S_PROXY each message is an unencrypted, unpadded SSH packet holding one
// connection-protocol message (RFC 4254):
//
//   uint32 packet length   (of what follows)
//   byte   padding length  (0)
//   byte   message type
//   ...    body
//
// Here are the message numbers, the one packet parser, a bounds-checked body reader and the one
// packet writer. Nothing here does I/O.
import { FieldWriter, ProtocolError } from './frames';

/** RFC 4254 message numbers: the connection protocol, the only messages proxy mode carries. */
export const SSH_MSG = {
  GLOBAL_REQUEST: 80,
  REQUEST_SUCCESS: 81,
  REQUEST_FAILURE: 82,
  CHANNEL_OPEN: 90,
  CHANNEL_OPEN_CONFIRMATION: 91,
  CHANNEL_OPEN_FAILURE: 92,
  CHANNEL_WINDOW_ADJUST: 93,
  CHANNEL_DATA: 94,
  CHANNEL_EXTENDED_DATA: 95,
  CHANNEL_EOF: 96,
  CHANNEL_CLOSE: 97,
  CHANNEL_REQUEST: 98,
  CHANNEL_SUCCESS: 99,
  CHANNEL_FAILURE: 100,
} as const;

/** RFC 4254 5.1 reason codes for CHANNEL_OPEN_FAILURE. */
export const OPEN_FAILURE = {
  ADMINISTRATIVELY_PROHIBITED: 1,
  CONNECT_FAILED: 2,
  UNKNOWN_CHANNEL_TYPE: 3,
  RESOURCE_SHORTAGE: 4,
} as const;

/** The data type code of stderr in CHANNEL_EXTENDED_DATA. */
export const EXTENDED_DATA_STDERR = 1;

/** Larger packets are refused, as OpenSSH's mux reader refuses them (PACKET_MAX_SIZE). */
export const MAX_PACKET_LENGTH = 256 * 1024;

/**
 * OpenSSH's mux-mode reader rejects a packet length under 5 (packet.c), so a message with an
 * empty body (REQUEST_SUCCESS, REQUEST_FAILURE) would end the client. Such a packet gets real
 * padding, declared in its padding-length byte; the stock client's reply handlers ignore it.
 */
const MIN_PACKET_LENGTH = 5;

export function messageName(type: number): string {
  return Object.entries(SSH_MSG).find(([, v]) => v === type)?.[0] ?? `message ${type}`;
}

export interface Packet {
  type: number;
  body: Buffer;
}

/** Splits the byte stream after MUX_S_PROXY into packets. */
export class PacketParser {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** The next whole packet, or null until more bytes arrive. Throws ProtocolError. */
  next(): Packet | null {
    if (this.buffer.length < 4) return null;
    const length = this.buffer.readUInt32BE(0);
    if (length < 2) throw new ProtocolError(`proxy packet of ${length} bytes has no room for its type`);
    if (length > MAX_PACKET_LENGTH) throw new ProtocolError(`proxy packet of ${length} bytes exceeds ${MAX_PACKET_LENGTH}`);
    if (this.buffer.length < 4 + length) return null;
    const padding = this.buffer[4]!;
    if (padding > length - 2) throw new ProtocolError(`proxy packet of ${length} bytes claims ${padding} bytes of padding`);
    const type = this.buffer[5]!;
    const body = Buffer.from(this.buffer.subarray(6, 4 + length - padding));
    this.buffer = this.buffer.subarray(4 + length);
    return { type, body };
  }
}

/** Reads a message body field by field; running past its end is a ProtocolError. */
export class FieldReader {
  private offset = 0;

  constructor(
    private readonly body: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.body.length - this.offset;
  }

  u8(field: string): number {
    if (this.remaining < 1) throw new ProtocolError(`truncated ${this.what}: no ${field}`);
    return this.body[this.offset++]!;
  }

  bool(field: string): boolean {
    return this.u8(field) !== 0;
  }

  u32(field: string): number {
    if (this.remaining < 4) throw new ProtocolError(`truncated ${this.what}: no ${field}`);
    const v = this.body.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** An SSH string as bytes (channel data). */
  bytes(field: string): Buffer {
    const length = this.u32(`${field} length`);
    if (length > this.remaining) throw new ProtocolError(`truncated ${this.what}: ${field} of ${length} bytes, ${this.remaining} left`);
    const v = this.body.subarray(this.offset, this.offset + length);
    this.offset += length;
    return v;
  }

  /** A text string; one holding a NUL byte is malformed, as for OpenSSH's sshbuf_get_cstring. */
  text(field: string): string {
    const b = this.bytes(field);
    if (b.includes(0)) throw new ProtocolError(`malformed ${this.what}: ${field} contains a NUL byte`);
    return b.toString('utf8');
  }

  /** Requires that nothing follows. */
  end(): void {
    if (this.remaining !== 0) throw new ProtocolError(`malformed ${this.what}: ${this.remaining} unexpected trailing bytes`);
  }
}

/** Builds one packet: fields appended in order, framed by `packet()`. */
export class PacketWriter extends FieldWriter {
  constructor(private readonly type: number) {
    super();
  }

  packet(): Buffer {
    const padding = Math.max(0, MIN_PACKET_LENGTH - (2 + this.length));
    const packetLength = 2 + this.length + padding;
    const head = Buffer.alloc(6);
    head.writeUInt32BE(packetLength);
    head[4] = padding;
    head[5] = this.type;
    return Buffer.concat([head, ...this.parts, Buffer.alloc(padding)], 4 + packetLength);
  }
}

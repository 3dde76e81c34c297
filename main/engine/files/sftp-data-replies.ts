// Read replies copied once, straight into the buffer that asked for them.
//
// A download is mostly SSH_FXP_DATA replies of 128 KiB, and each arrives as four or more SSH
// packets of at most 32 KiB. ssh2's SFTP client gathers every such reply into a new buffer of
// its own, then copies it into the buffer given to `read()`. Per 256 MiB that is 256 MiB of
// short-lived buffers outside V8's heap, and those drive its full collections (one every
// ~40 ms during a download, measured with --trace-gc), on two cores shared with sshd.
//
// This sits in front of ssh2's parser, on the SFTP session's channel data. It splits the
// stream into SFTP packets itself: a DATA reply to a pending `read()` is copied piece by
// piece into that read's buffer and answered as ssh2 answers it; every other packet passes
// through to ssh2 unchanged, a whole packet at a time, so ssh2's own parser never sees a
// packet boundary move. Anything it does not expect (an unknown request id, a reply longer
// than asked) also goes to ssh2, whose errors stay the errors.
//
// It relies on three things inside ssh2's SFTP client (checked here before it is used, and
// covered by every download test): `push(data)` takes the channel's data, `_requests[id]`
// holds a pending request, and a read's request has the `buffer` its reply fills and
// `cb(undefined, buffer, bytes)` to call once it is filled.
import type { SFTPWrapper } from 'ssh2';

const SSH_FXP_DATA = 103;
/** uint32 length, byte type, uint32 request id, uint32 data length. */
const DATA_HEADER = 13;
/** uint32 length, byte type: enough to tell a DATA reply from anything else. */
const TYPE_HEADER = 5;

interface PendingRead {
  buffer?: Buffer;
  cb?: (err: undefined, buffer: Buffer, bytes: number) => void;
}

interface Ssh2SftpParser {
  push(data: Buffer | null): unknown;
  _requests: Record<number, PendingRead | undefined>;
}

/**
 * Puts the direct path in front of `sftp`'s parser. False (and nothing changed) when this
 * ssh2 does not look as expected: downloads then go through ssh2's own path.
 */
export function copyDataRepliesDirectly(sftp: SFTPWrapper): boolean {
  const parser = sftp as unknown as Ssh2SftpParser;
  if (typeof parser.push !== 'function' || typeof parser._requests !== 'object' || parser._requests === null) return false;
  const ssh2Push = parser.push.bind(parser);

  /** The start of the packet being read, until it is known where its bytes go. */
  const header = Buffer.alloc(DATA_HEADER);
  let headerBytes = 0;
  /** Bytes of the current packet still to pass to ssh2 (a packet that is not ours). */
  let passing = 0;
  /** A DATA reply being copied: its read, where the next byte goes, and how many are left. */
  let reply: { read: PendingRead & { buffer: Buffer }; id: number; bytes: number; at: number } | null = null;

  /** Takes a packet whose header is complete: ours to copy, or passed to ssh2 (header first). */
  const route = (): void => {
    const length = header.readUInt32BE(0);
    if (headerBytes === DATA_HEADER && header[4] === SSH_FXP_DATA) {
      const id = header.readUInt32BE(5);
      const bytes = header.readUInt32BE(9);
      const read = parser._requests[id];
      if (read?.buffer && typeof read.cb === 'function' && length === 9 + bytes && bytes <= read.buffer.length) {
        reply = { read: read as PendingRead & { buffer: Buffer }, id, bytes, at: 0 };
        headerBytes = 0;
        if (bytes === 0) finishReply();
        return;
      }
    }
    // Not ours: ssh2 parses it, from the header on (a length it refuses is its error to raise).
    ssh2Push(header.subarray(0, headerBytes));
    passing = 4 + length - headerBytes;
    headerBytes = 0;
  };

  const finishReply = (): void => {
    const { read, id, bytes } = reply!;
    reply = null;
    delete parser._requests[id];
    read.cb!(undefined, read.buffer, bytes);
  };

  parser.push = (data: Buffer | null): unknown => {
    if (data === null) return ssh2Push(null);
    let p = 0;
    while (p < data.length) {
      if (passing > 0) {
        const n = Math.min(passing, data.length - p);
        ssh2Push(p === 0 && n === data.length ? data : data.subarray(p, p + n));
        passing -= n;
        p += n;
      } else if (reply) {
        const n = Math.min(reply.bytes - reply.at, data.length - p);
        data.copy(reply.read.buffer, reply.at, p, p + n);
        reply.at += n;
        p += n;
        if (reply.at === reply.bytes) finishReply();
      } else {
        // Gather the header: the type decides how much of it is needed.
        const need = headerBytes < TYPE_HEADER || header[4] !== SSH_FXP_DATA ? TYPE_HEADER : DATA_HEADER;
        const n = Math.min(need - headerBytes, data.length - p);
        data.copy(header, headerBytes, p, p + n);
        headerBytes += n;
        p += n;
        if (headerBytes === TYPE_HEADER && header[4] === SSH_FXP_DATA && header.readUInt32BE(0) >= 9) continue; // read the id and size too
        if (headerBytes >= TYPE_HEADER) route();
      }
    }
    return undefined;
  };
  return true;
}

// This computer's side of a transfer: a file (the engine runs as the person, so it reads and
// writes their files itself) or a stream (the web host's upload and download, where the
// other end is a browser). A download's side takes the bytes in order; an upload's side gives
// them by offset, and a stream keeps what the server has not acknowledged yet, so a copy cut
// off by a reconnect can send it again.
import { once } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { HitchError } from '../errors';

/** Where a download's bytes go, in order (several chunks at once when they arrived together). */
export interface DownloadSink {
  write(data: Buffer[]): Promise<void>;
}

/** Where an upload's bytes come from; `release` says everything before an offset is acknowledged. */
export interface UploadSource {
  read(offset: number, length: number): Promise<Buffer>;
  release(upTo: number): void;
}

/** Appends to an open file at `position` onward. */
export function fileSink(file: FileHandle, position: number): DownloadSink & { position: number } {
  const sink = {
    position,
    async write(chunks: Buffer[]): Promise<void> {
      let left = chunks;
      while (left.length > 0) {
        const { bytesWritten } = await file.writev(left, sink.position);
        sink.position += bytesWritten;
        // A short write (rare): what is left of the chunks goes again.
        let skip = bytesWritten;
        const rest: Buffer[] = [];
        for (const c of left) {
          if (skip >= c.length) skip -= c.length;
          else {
            rest.push(skip > 0 ? c.subarray(skip) : c);
            skip = 0;
          }
        }
        left = rest;
      }
    },
  };
  return sink;
}

export function fileSource(file: FileHandle, path: string): UploadSource {
  return {
    async read(offset, length) {
      const buffer = Buffer.allocUnsafe(length);
      for (let at = 0; at < length; ) {
        const { bytesRead } = await file.read(buffer, at, length - at, offset + at);
        if (bytesRead === 0) throw new HitchError('bad-request', `${path} ended at ${offset + at} bytes: it changed while being copied.`);
        at += bytesRead;
      }
      return buffer;
    },
    release() {},
  };
}

/** Writes to a stream with its backpressure; a stream that went away fails the write. */
export function streamSink(body: Writable): DownloadSink {
  return {
    async write(chunks) {
      if (body.destroyed || body.writableEnded) throw new HitchError('cancelled', 'The download was abandoned by its reader.');
      let full = false;
      for (const data of chunks) full = !body.write(data) || full;
      if (full) {
        await Promise.race([once(body, 'drain'), once(body, 'close').then(() => Promise.reject(new HitchError('cancelled', 'The download was abandoned by its reader.')))]);
      }
    },
  };
}

/**
 * Reads a stream in order, keeping the bytes from the last acknowledged offset on (at most
 * what is in flight, plus one chunk of the stream): a resumed copy asks for them again.
 */
export function streamSource(body: Readable, name: string): UploadSource {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  /** The chunks kept, each with its offset, in order; none before the last release. */
  const kept: { at: number; data: Buffer }[] = [];
  let end = 0;
  let ended = false;
  return {
    async read(offset, length) {
      if (kept.length > 0 && offset < kept[0]!.at) throw new HitchError('internal', `${name}: bytes before ${kept[0]!.at} were already let go.`);
      while (end < offset + length) {
        if (ended) throw new HitchError('bad-request', `${name} ended at ${end} bytes, short of its announced size.`);
        const next = await chunks.next();
        if (next.done) {
          ended = true;
          continue;
        }
        const data = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        kept.push({ at: end, data });
        end += data.length;
      }
      const parts: Buffer[] = [];
      for (const { at, data } of kept) {
        if (at + data.length <= offset || at >= offset + length) continue;
        parts.push(data.subarray(Math.max(0, offset - at), Math.min(data.length, offset + length - at)));
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    },
    release(upTo) {
      while (kept.length > 0 && kept[0]!.at + kept[0]!.data.length <= upTo) kept.shift();
    },
  };
}

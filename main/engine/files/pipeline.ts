// Pipelined SFTP copying of one byte range: many read or write requests in flight at once,
// as OpenSSH's sftp and ssh2's fastGet do, so a round trip is not paid per chunk. Both
// directions report `done`, the bytes finished contiguously from the start, which is where a
// copy cut off by a reconnect goes on from: whatever was in flight past it is asked again.
import { HitchError } from '../errors';
import type { SftpSession } from './sftp-session';

/** Bytes per request (further bounded by the server's limits@openssh.com) and requests in flight. */
export const CHUNK_BYTES = 128 * 1024;
export const REQUESTS_IN_FLIGHT = 32;

export interface RangeCopy {
  sftp: SftpSession;
  /** An open handle on the remote file, and its path for error messages. */
  handle: Buffer;
  path: string;
  /** Start at this offset (bytes already done); copy until `size`. */
  from: number;
  size: number;
  chunk: number;
  depth: number;
  signal: AbortSignal;
  /** Bytes contiguous from the start that are done, after each step forward. */
  progress(done: number): void;
}

export function cancelledError(): HitchError {
  return new HitchError('cancelled', 'The transfer was cancelled.');
}

/**
 * Reads [from, size) from the remote file and hands it to `write` in order, the chunks that
 * arrived meanwhile together (each write awaited before the next, so `done` is what the local
 * side holds). `recycle`: the writer is done with the buffers once its write resolves (a file),
 * so they are used again. Settles once no request
 * is in flight and no write is under way.
 */
export function pullRange(copy: RangeCopy & { write(data: Buffer[]): Promise<void>; recycle: boolean }): Promise<void> {
  const { sftp, handle, path, size, chunk, depth, signal } = copy;
  return new Promise((resolve, reject) => {
    let next = copy.from;
    let done = copy.from;
    let inflight = 0;
    let writing = false;
    let failure: Error | null = null;
    /** Chunks read ahead of `done`, by offset. */
    const ready = new Map<number, Buffer>();

    const settle = (): void => {
      if (inflight > 0 || writing) return;
      signal.removeEventListener('abort', onAbort);
      if (failure) reject(failure);
      else if (done >= size) resolve();
    };
    const fail = (err: Error): void => {
      failure ??= err;
      settle();
    };
    const onAbort = (): void => fail(cancelledError());
    signal.addEventListener('abort', onAbort);

    /** Read buffers given back once written: reused, so a long copy does not churn the allocator and the GC. */
    const spare: Buffer[] = [];
    const issue = (offset: number, length: number): void => {
      inflight++;
      const buffer = length === chunk && spare.length > 0 ? spare.pop()! : Buffer.allocUnsafe(length);
      sftp.read(handle, buffer, length, offset, path).then(
        (n) => {
          inflight--;
          if (failure) return settle();
          if (n === 0) return fail(new HitchError('sftp', `${path} ended at ${offset} bytes, short of the ${size} it had: it changed while being copied.`));
          ready.set(offset, n === length ? buffer : buffer.subarray(0, n));
          if (n < length) issue(offset + n, length - n); // a short read: the rest is asked again
          void flush();
          pump();
        },
        (err: Error) => {
          inflight--;
          fail(err);
        },
      );
    };
    const pump = (): void => {
      // Read-ahead is bounded too, so a slow local side does not fill memory.
      while (!failure && inflight < depth && next < size && next - done < depth * chunk * 2) {
        const length = Math.min(chunk, size - next);
        issue(next, length);
        next += length;
      }
      settle();
    };
    const flush = async (): Promise<void> => {
      if (writing) return;
      writing = true;
      try {
        while (!failure && ready.has(done)) {
          // Every chunk that is next in order goes in one write (one system call for a file).
          const batch: Buffer[] = [];
          let end = done;
          for (let data = ready.get(end); data; data = ready.get(end)) {
            ready.delete(end);
            batch.push(data);
            end += data.length;
          }
          await copy.write(batch);
          if (copy.recycle) for (const b of batch) if (b.length === chunk && b.byteOffset === 0 && b.buffer.byteLength === chunk) spare.push(b);
          done = end;
          copy.progress(done);
        }
      } catch (err) {
        failure ??= err as Error;
      }
      writing = false;
      pump();
    };
    if (signal.aborted) fail(cancelledError());
    else pump();
  });
}

/**
 * Writes [from, size) to the remote file from `read` (asked in order, one read at a time),
 * with many writes in flight; `done` advances as the server acknowledges them.
 */
export function pushRange(copy: RangeCopy & { read(offset: number, length: number): Promise<Buffer> }): Promise<void> {
  const { sftp, handle, path, size, chunk, depth, signal } = copy;
  return new Promise((resolve, reject) => {
    let next = copy.from;
    let done = copy.from;
    let inflight = 0;
    let reading = false;
    let failure: Error | null = null;
    /** Acknowledged writes past `done`: offset → length. */
    const acked = new Map<number, number>();

    const settle = (): void => {
      if (inflight > 0 || reading) return;
      signal.removeEventListener('abort', onAbort);
      if (failure) reject(failure);
      else if (done >= size) resolve();
    };
    const fail = (err: Error): void => {
      failure ??= err;
      settle();
    };
    const onAbort = (): void => fail(cancelledError());
    signal.addEventListener('abort', onAbort);

    const pump = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      try {
        while (!failure && inflight < depth && next < size) {
          const offset = next;
          const length = Math.min(chunk, size - offset);
          const data = await copy.read(offset, length);
          if (failure) break;
          next += length;
          inflight++;
          sftp.write(handle, data, offset, path).then(
            () => {
              inflight--;
              acked.set(offset, length);
              for (let l = acked.get(done); l !== undefined; l = acked.get(done)) {
                acked.delete(done);
                done += l;
              }
              copy.progress(done);
              void pump();
              settle();
            },
            (err: Error) => {
              inflight--;
              fail(err);
            },
          );
        }
      } catch (err) {
        failure ??= err as Error;
      }
      reading = false;
      settle();
    };
    if (signal.aborted) fail(cancelledError());
    else void pump();
  });
}

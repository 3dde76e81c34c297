// Pipelined SFTP copying of one byte range: many read or write requests in flight at once,
// as OpenSSH's sftp and ssh2's fastGet do, so a round trip is not paid per chunk. Both
// directions report `done`, the bytes finished contiguously from the start, which is where a
// copy cut off by a reconnect goes on from: whatever was in flight past it is asked again.
import { HitchError } from '../errors';
import type { SftpSession } from './sftp-session';

/** Bytes per request (further bounded by the server's limits@openssh.com) and requests in flight. */
export const CHUNK_BYTES = 128 * 1024;
export const REQUESTS_IN_FLIGHT = 32;
/** A download asks again once this many requests are answered, so between 24 and 32 are in flight. */
const REFILL_BATCH = 8;

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
 * How a range copy ends: with its first failure (a cancel is one) or once everything is done,
 * and either only when nothing is under way any more (`busy`), so no request or write is left
 * running behind the caller.
 */
class RangeEnd {
  failure: Error | null = null;
  private readonly onAbort = (): void => this.fail(cancelledError());

  constructor(
    private readonly signal: AbortSignal,
    private readonly busy: () => boolean,
    private readonly finished: () => boolean,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {
    signal.addEventListener('abort', this.onAbort);
  }

  settle(): void {
    if (this.busy()) return;
    this.signal.removeEventListener('abort', this.onAbort);
    if (this.failure) this.reject(this.failure);
    else if (this.finished()) this.resolve();
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.settle();
  }
}

/**
 * Where a download's bytes go, always in order: a file (writev at the offset) or a stream.
 * `keepsBuffers`: the target may still hold the buffers after its write settles (a stream
 * queues them), so they are never used again; a file is done with them.
 */
export interface PullTarget {
  write(data: Buffer[], offset: number): Promise<void>;
  readonly keepsBuffers: boolean;
}

/**
 * Reads [from, size) from the remote file into `target`. The chunks that arrived while a
 * write was under way go together in the next write, each write awaited before the next:
 * on this path a thread hop per 128 KiB chunk cost more than the copy itself. `done` counts
 * bytes written with everything before them. Settles once no request is in flight and no
 * write is under way.
 */
export function pullRange(copy: RangeCopy & { target: PullTarget }): Promise<void> {
  const { sftp, handle, path, size, chunk, depth, signal, target } = copy;
  return new Promise((resolve, reject) => {
    let next = copy.from;
    let done = copy.from;
    let inflight = 0;
    let writing = false;
    /** Chunks read ahead of `done`, by offset. */
    const ready = new Map<number, Buffer>();
    const end = new RangeEnd(signal, () => inflight > 0 || writing, () => done >= size, resolve, reject);
    const settle = (): void => end.settle();
    const fail = (err: Error): void => end.fail(err);

    /** Read buffers a file has written: used again, so a long copy does not churn the allocator and the GC. */
    const spare: Buffer[] = [];
    const issue = (offset: number, length: number): void => {
      inflight++;
      const buffer = length === chunk && spare.length > 0 ? spare.pop()! : Buffer.allocUnsafe(length);
      sftp.read(handle, buffer, length, offset, path).then(
        (n) => {
          inflight--;
          if (end.failure) return settle();
          if (n === 0) return fail(new HitchError('sftp', `${path} ended at ${offset} bytes, short of the ${size} it had: it changed while being copied.`));
          if (n < length) issue(offset + n, length - n); // a short read: the rest is asked again
          ready.set(offset, n === length ? buffer : buffer.subarray(0, n));
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
      // Requests go out REFILL_BATCH at a time (unless the rest of the file fits): one write
      // on the connection for them all (coalesce-writes.ts), not one per chunk.
      if (depth - inflight < REFILL_BATCH && size - next > (depth - inflight) * chunk) return settle();
      // Read-ahead is bounded too, so a slow local side does not fill memory.
      while (!end.failure && inflight < depth && next < size && next - done < depth * chunk * 2) {
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
        while (!end.failure && ready.has(done)) {
          // Every chunk that is next in order goes in one write.
          const batch: Buffer[] = [];
          let upTo = done;
          for (let data = ready.get(upTo); data; data = ready.get(upTo)) {
            ready.delete(upTo);
            batch.push(data);
            upTo += data.length;
          }
          await target.write(batch, done);
          if (!target.keepsBuffers) for (const data of batch) if (data.length === chunk && data.byteOffset === 0 && data.buffer.byteLength === chunk) spare.push(data);
          done = upTo;
          copy.progress(done);
        }
      } catch (err) {
        end.fail(err as Error); // settles once `writing` is back to false, below
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
    /** Acknowledged writes past `done`: offset → length. */
    const acked = new Map<number, number>();
    const end = new RangeEnd(signal, () => inflight > 0 || reading, () => done >= size, resolve, reject);
    const settle = (): void => end.settle();
    const fail = (err: Error): void => end.fail(err);

    const pump = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      try {
        while (!end.failure && inflight < depth && next < size) {
          const offset = next;
          const length = Math.min(chunk, size - offset);
          const data = await copy.read(offset, length);
          if (end.failure) break;
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
        end.fail(err as Error); // settles once reading is over, below
      }
      reading = false;
      settle();
    };
    if (signal.aborted) fail(cancelledError());
    else void pump();
  });
}

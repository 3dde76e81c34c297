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

/** Where a download's bytes go: in order (a stream), or each chunk at its offset as it arrives (a file). */
export type PullTarget = { inOrder(data: Buffer[]): Promise<void> } | { at(offset: number, data: Buffer): Promise<void> };

/**
 * Reads [from, size) from the remote file into `target`. In order, the chunks that arrived
 * meanwhile go together, each write awaited before the next; at offsets (a file), every chunk
 * is written as it arrives, several at once, and its read buffer is used again afterwards.
 * Either way `done` only counts bytes written with everything before them. Settles once no
 * request is in flight and no write is under way.
 */
export function pullRange(copy: RangeCopy & { target: PullTarget }): Promise<void> {
  const { sftp, handle, path, size, chunk, depth, signal, target } = copy;
  return new Promise((resolve, reject) => {
    let next = copy.from;
    let done = copy.from;
    let inflight = 0;
    /** Writes under way. */
    let writing = 0;
    /** In order: chunks read ahead of `done`, by offset. At offsets: chunks written past `done`, offset → length. */
    const ready = new Map<number, Buffer>();
    const written = new Map<number, number>();
    const end = new RangeEnd(signal, () => inflight > 0 || writing > 0, () => done >= size, resolve, reject);
    const settle = (): void => end.settle();
    const fail = (err: Error): void => end.fail(err);

    /** Read buffers given back once written to a file: reused, so a long copy does not churn the allocator and the GC. */
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
          const data = n === length ? buffer : buffer.subarray(0, n);
          if ('at' in target) writeAt(offset, data);
          else {
            ready.set(offset, data);
            void flush(target);
          }
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
      while (!end.failure && inflight < depth && next < size && next - done < depth * chunk * 2) {
        const length = Math.min(chunk, size - next);
        issue(next, length);
        next += length;
      }
      settle();
    };
    const writeAt = (offset: number, data: Buffer): void => {
      writing++;
      (target as { at(offset: number, data: Buffer): Promise<void> }).at(offset, data).then(
        () => {
          writing--;
          if (data.length === chunk && data.byteOffset === 0 && data.buffer.byteLength === chunk) spare.push(data);
          written.set(offset, data.length);
          const before = done;
          for (let l = written.get(done); l !== undefined; l = written.get(done)) {
            written.delete(done);
            done += l;
          }
          if (done > before) copy.progress(done);
          pump();
        },
        (err: Error) => {
          writing--;
          fail(err);
        },
      );
    };
    const flush = async (ordered: { inOrder(data: Buffer[]): Promise<void> }): Promise<void> => {
      if (writing > 0) return;
      writing++;
      try {
        while (!end.failure && ready.has(done)) {
          // Every chunk that is next in order goes in one write.
          const batch: Buffer[] = [];
          let end = done;
          for (let data = ready.get(end); data; data = ready.get(end)) {
            ready.delete(end);
            batch.push(data);
            end += data.length;
          }
          await ordered.inOrder(batch);
          done = end;
          copy.progress(done);
        }
      } catch (err) {
        end.fail(err as Error); // settles once the write count below is back to zero
      }
      writing--;
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

// The descriptors a stock client passes (its stdin, stdout, stderr) as Node streams, without
// blocking a thread-pool thread on a read that may never end: terminals and pipes/sockets get
// event-loop handles; only regular files and devices such as /dev/null use fs streams.
import { createReadStream, createWriteStream, closeSync, fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { isatty, ReadStream as TtyReadStream, WriteStream as TtyWriteStream } from 'node:tty';

/** A passed descriptor to read from. The stream owns the descriptor and closes it when destroyed. */
export function inputStream(fd: number): Readable {
  // libuv reopens a terminal (the same device, a descriptor of its own) so that it can be
  // non-blocking without changing the client's file description.
  if (isatty(fd)) return new TtyReadStream(fd);
  const st = fstatSync(fd);
  // As OpenSSH's master does, a pipe or socket becomes non-blocking.
  if (st.isFIFO() || st.isSocket()) return new Socket({ fd, readable: true, writable: false, allowHalfOpen: true });
  return createReadStream('', { fd, autoClose: true });
}

/** A passed descriptor to write to. The stream owns the descriptor. */
export function outputStream(fd: number): Writable {
  if (isatty(fd)) return new TtyWriteStream(fd);
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return new Socket({ fd, readable: false, writable: true, allowHalfOpen: true });
  return createWriteStream('', { fd, autoClose: true });
}

/** Opens each descriptor as a stream; on failure closes every descriptor and rethrows. */
export function openStreams<T extends Readable | Writable>(fds: number[], open: ((fd: number) => T)[]): T[] {
  const streams: T[] = [];
  try {
    fds.forEach((fd, i) => streams.push(open[i]!(fd)));
    return streams;
  } catch (err) {
    for (const s of streams) s.destroy();
    for (const fd of fds.slice(streams.length)) closeQuietly(fd);
    throw err;
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

/**
 * Ends an output once what was written has reached the descriptor, then closes it. Resolves
 * when closed; an output whose reader went away (EPIPE) resolves too.
 */
export function finishOutput(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (out.destroyed) return resolve();
    out.once('close', () => resolve());
    out.once('error', () => out.destroy());
    // A socket is not shut down: shutdown(2) would act on the client's socket itself (the
    // stdout of a process whose parent gave it a socketpair, as Node does), not only on this
    // copy. What was written is flushed, then this copy is closed, as OpenSSH's master does.
    if (out instanceof Socket) out.write('', () => out.destroy());
    else out.end(() => out.destroy());
  });
}

/**
 * Copies `from` into `to` with backpressure (pipe), never ending `to`. If `to` fails (the
 * reader went away), what follows is read and dropped, as OpenSSH does after a failed write,
 * so the remote side is never stalled by a window that does not open; `readerGone` hears of it.
 */
export function relay(from: Readable, to: Writable, readerGone?: () => void): void {
  let gone = false;
  to.on('error', () => {
    if (gone) return;
    gone = true;
    from.unpipe(to);
    from.on('data', () => undefined);
    from.resume();
    readerGone?.();
  });
  from.pipe(to, { end: false });
}

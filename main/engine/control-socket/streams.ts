// The descriptors a stock client passes (its stdin, stdout, stderr) as Node streams, without
// blocking a thread-pool thread on a read that may never end: terminals and pipes/sockets get
// event-loop handles; only regular files and devices such as /dev/null use fs streams.
import { createReadStream, createWriteStream, closeSync, fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { isatty, ReadStream as TtyReadStream, WriteStream as TtyWriteStream } from 'node:tty';

/** Sets or clears O_NONBLOCK, answering whether it was set (hitch-native's setNonBlocking). */
export type SetNonBlocking = (fd: number, on: boolean) => boolean;

/**
 * A lent pipe or socket as an event-loop stream. It becomes non-blocking, as OpenSSH's master
 * makes it, and is given back as it came: O_NONBLOCK belongs to the open file description the
 * client shares with whatever writes to it next (the rest of a script's pipeline), which a
 * non-blocking pipe would fail with EAGAIN. OpenSSH's channels restore it on close the same way.
 */
function lentSocket(fd: number, setNonBlocking: SetNonBlocking, side: { readable: boolean; writable: boolean }): Socket {
  const wasNonBlocking = setNonBlocking(fd, true);
  const socket = new Socket({ fd, ...side, allowHalfOpen: true });
  if (!wasNonBlocking) {
    const destroy = socket._destroy.bind(socket);
    // Before the handle closes the descriptor.
    socket._destroy = (err, callback) => {
      try {
        setNonBlocking(fd, false);
      } catch {
        /* already closed */
      }
      destroy(err, callback);
    };
  }
  return socket;
}

/** A passed descriptor to read from. The stream owns the descriptor and closes it when destroyed. */
export function inputStream(fd: number, setNonBlocking: SetNonBlocking): Readable {
  // libuv reopens a terminal (the same device, a descriptor of its own) so that it can be
  // non-blocking without changing the client's file description.
  if (isatty(fd)) return new TtyReadStream(fd);
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return lentSocket(fd, setNonBlocking, { readable: true, writable: false });
  return createReadStream('', { fd, autoClose: true });
}

/** A passed descriptor to write to. The stream owns the descriptor. */
export function outputStream(fd: number, setNonBlocking: SetNonBlocking): Writable {
  if (isatty(fd)) return new TtyWriteStream(fd);
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) return lentSocket(fd, setNonBlocking, { readable: false, writable: true });
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

// Unix sockets that carry descriptors, as the control socket needs them: a listener handing
// over accepted descriptors, and a connection with bytes and descriptors in, queued writes out,
// half-close and an idempotent destroy. The native side (native/unix_socket.c) owns the
// descriptor and its event-loop handle; this side keeps the queue and the events.
import { EventEmitter } from 'node:events';
import type { NativeEndpoint } from 'hitch-native';
import type { Unix } from './unix';

/** Bytes queued before write() asks the caller to wait for 'drain'. */
const HIGH_WATER_MARK = 256 * 1024;

export class UnixListener extends EventEmitter<{ connection: [fd: number]; error: [err: Error] }> {
  private constructor(private readonly endpoint: NativeEndpoint) {
    super();
  }

  /** Binds and listens at `path` (which must not exist); accepted descriptors come as 'connection'. */
  static listen(unix: Unix, path: string, backlog: number): UnixListener {
    let listener: UnixListener | null = null;
    const endpoint = unix.native.listen(path, backlog, (event, a) => {
      if (event === 'accept') listener?.emit('connection', a as number);
      else if (event === 'error') listener?.emit('error', a as Error);
    });
    listener = new UnixListener(endpoint);
    endpoint.setReading(true);
    return listener;
  }

  get fd(): number {
    return this.endpoint.fd();
  }

  close(): void {
    this.endpoint.close();
  }
}

interface QueuedWrite {
  data: Buffer;
  fds: number[] | undefined;
  done: (() => void) | undefined;
}

export class UnixConnection extends EventEmitter<{
  data: [chunk: Buffer, fds: number[]];
  end: [];
  drain: [];
  error: [err: Error];
  close: [];
}> {
  private readonly queue: QueuedWrite[] = [];
  private queuedBytes = 0;
  private ending = false;
  private ended = false;
  private peerEnded = false;
  private destroyed = false;
  /** write() said "wait": 'drain' is owed once the queue is written. */
  private drainOwed = false;
  readonly fd: number;
  private readonly endpoint: NativeEndpoint;

  /** Takes ownership of a connected socket's descriptor; reading starts at once. */
  constructor(unix: Unix, fd: number) {
    super();
    this.fd = fd;
    this.endpoint = unix.native.adopt(fd, (event, a, b) => this.onEvent(event, a, b));
    this.endpoint.setReading(true);
  }

  /** Connects to the socket at `path` (tests and clients). */
  static connect(unix: Unix, path: string): UnixConnection {
    return new UnixConnection(unix, unix.native.connect(path));
  }

  get writableLength(): number {
    return this.queuedBytes;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  private onEvent(event: string, a: unknown, b: unknown): void {
    switch (event) {
      case 'data':
        this.emit('data', (a as Buffer | undefined) ?? Buffer.alloc(0), (b as number[] | undefined) ?? []);
        break;
      case 'end':
        this.peerEnded = true;
        this.emit('end');
        if (this.ended) this.destroy();
        break;
      case 'writable':
        this.flush();
        break;
      case 'error':
        this.fail(a as Error);
        break;
    }
  }

  /**
   * Queues `data` (with `fds` passed beside its first byte); `done` runs once it is written.
   * False when the queue is past its mark: wait for 'drain'.
   */
  write(data: Buffer, fds?: number[], done?: () => void): boolean {
    if (this.destroyed || this.ending) return false;
    this.queue.push({ data, fds, done });
    this.queuedBytes += data.length;
    this.flush();
    if (this.queuedBytes < HIGH_WATER_MARK) return true;
    this.drainOwed = true;
    return false;
  }

  pause(): void {
    if (!this.destroyed) this.endpoint.setReading(false);
  }

  resume(): void {
    if (!this.destroyed && !this.peerEnded) this.endpoint.setReading(true);
  }

  /** No more writes: the queue is written, then our side is shut; closed once the peer's is too. */
  end(): void {
    if (this.destroyed || this.ending) return;
    this.ending = true;
    this.flush();
  }

  /** Closes now, dropping what is queued. Emits 'close' once. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.endpoint.close();
    this.queue.length = 0;
    this.queuedBytes = 0;
    process.nextTick(() => this.emit('close'));
  }

  private flush(): void {
    try {
      while (!this.destroyed && this.queue.length > 0) {
        const item = this.queue[0]!;
        const n = this.endpoint.write(item.data, item.fds);
        this.queuedBytes -= n;
        if (n < item.data.length) {
          if (n > 0) {
            item.data = item.data.subarray(n);
            item.fds = undefined;
          }
          return; // the socket is full: 'writable' comes back here
        }
        this.queue.shift();
        item.done?.();
      }
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.destroyed) return;
    if (this.ending && !this.ended) {
      this.ended = true;
      this.endpoint.shutdown();
      if (this.peerEnded) this.destroy();
    } else if (this.drainOwed && this.queuedBytes === 0) {
      this.drainOwed = false;
      this.emit('drain');
    }
  }

  private fail(err: Error): void {
    if (this.destroyed) return;
    this.emit('error', err);
    this.destroy();
  }
}

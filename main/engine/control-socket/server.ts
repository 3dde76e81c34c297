// One master's control socket: the listener (a private path, a stale socket replaced, a live
// one never stolen, peers of another user refused) and one ControlClient per connection, which
// parses frames, dispatches each through the handler table (handlers.ts) and writes replies.
import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Logger } from '../log';
import type { ControlSocketForwards } from './forwards';
import { EXIT_SIGNAL_EXTENSION, FrameParser, MAX_FRAME, MessageReader, MSG, ProtocolError, reply, typeName, type Frame } from './frames';
import type { ConnectionState, ControlConnection, ControlServerPort } from './connection';
import { handlers } from './handlers';
import type { MasterPort } from './master-port';
import { closeQuietly } from './streams';
import type { Unix } from '../../native/unix';
import { UnixConnection, UnixListener } from '../../native/unix-socket';

/** How long a client may take to pass the descriptors a request announced. */
const FD_TIMEOUT_MS = 10_000;
/** How long a closing connection waits for the peer to read the last replies and close its end. */
const LINGER_MS = 2_000;
/** Descriptors a client may have passed ahead of the request that takes them (NEW_SESSION takes 3). */
const MAX_HELD_FDS = 8;
/** Bytes waiting for a client that does not read, before its connection is closed. */
const MAX_UNREAD_BYTES = 64 * 1024 * 1024;

export interface ControlSocketServerOptions {
  path: string;
  master: MasterPort;
  forwards: ControlSocketForwards;
  unix: Unix;
  log: Logger;
  /** `ssh -O stop`: the socket is gone, and stays gone while this master lives. */
  onStopListening(): void;
}

export class ControlSocketServer implements ControlServerPort {
  private listener: UnixListener | null = null;
  /** The socket file's inode, so that only our own socket is ever removed. */
  private inode: number | null = null;
  private readonly clients = new Set<ControlClient>();
  private nextClient = 1;
  private nextSession = 1;
  private closed = false;

  private constructor(readonly opts: ControlSocketServerOptions) {}

  get path(): string {
    return this.opts.path;
  }

  get master(): MasterPort {
    return this.opts.master;
  }

  get forwards(): ControlSocketForwards {
    return this.opts.forwards;
  }

  get unix(): Unix {
    return this.opts.unix;
  }

  get log(): Logger {
    return this.opts.log;
  }

  get listening(): boolean {
    return this.listener !== null;
  }

  /** A number for a session or stdio forward, as SESSION_OPENED and EXIT_MESSAGE name it. */
  sessionNumber(): number {
    return this.nextSession++;
  }

  /** Binds the socket: at a temporary name first, then linked into place (as OpenSSH does). */
  static async listen(opts: ControlSocketServerOptions): Promise<ControlSocketServer> {
    const server = new ControlSocketServer(opts);
    await replaceStaleSocket(opts.path);
    const temp = `${opts.path}.${randomBytes(12).toString('base64url').slice(0, 16)}`;
    const listener = UnixListener.listen(opts.unix, temp, 64);
    try {
      await chmod(temp, 0o600);
      try {
        await link(temp, opts.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`another process created ${opts.path} meanwhile; not replacing it`);
        throw err;
      }
      server.inode = (await lstat(opts.path)).ino;
    } catch (err) {
      listener.close();
      throw err;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    listener.on('error', (err: Error) => opts.log.warn('control socket listener failed', { master: opts.master.id, error: err.message }));
    listener.on('connection', (fd) => server.accept(fd));
    server.listener = listener;
    opts.log.info('control socket listening', { master: opts.master.id, path: opts.path });
    return server;
  }

  /** A connection the listener accepted (its descriptor is non-blocking and close-on-exec). */
  private accept(fd: number): void {
    if (this.closed) {
      closeQuietly(fd);
      return;
    }
    const { native } = this.opts.unix;
    try {
      // The socket is 0600 in a 0700 directory, so the kernel already keeps other users out;
      // this is the check OpenSSH makes too (root may connect, as it could anyway).
      const peer = native.peerCredentials(fd);
      const uid = process.getuid?.() ?? peer.uid;
      if (peer.uid !== uid && peer.uid !== 0) {
        this.log.warn('control socket refused a peer of another user', { master: this.master.id, peerUid: peer.uid, peerPid: peer.pid, uid });
        closeQuietly(fd);
        return;
      }
    } catch (err) {
      this.log.warn('control socket could not check a peer', { master: this.master.id, error: (err as Error).message });
      closeQuietly(fd);
      return;
    }
    const client = new ControlClient(this, new UnixConnection(this.opts.unix, fd), this.nextClient++);
    this.clients.add(client);
    client.onClose(() => this.clients.delete(client));
    client.start();
  }

  /** Stops accepting connections and removes the socket file; connected clients go on. */
  async stopListening(): Promise<void> {
    const listener = this.listener;
    this.listener = null;
    if (!listener) return;
    listener.close();
    try {
      // Only if the file is still ours: another process may have replaced it meanwhile.
      if ((await lstat(this.path)).ino === this.inode) await unlink(this.path);
    } catch {
      /* gone already */
    }
    this.opts.log.info('control socket removed', { master: this.master.id, path: this.path });
  }

  /** `ssh -O stop`. */
  stopListeningForClient(): void {
    this.opts.onStopListening();
  }

  /** Removes the socket and closes every client connection (their sessions end with the master). */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopListening();
    for (const client of this.clients) client.close('the master closed');
  }
}

/** A control socket path already there: a stale one (nobody answers) is removed, a live one kept. */
async function replaceStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const answer = await new Promise<string | null>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(null);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  if (answer === null) throw new Error(`a live control socket at ${path} belongs to another master; not replacing it`);
  if (answer !== 'ECONNREFUSED') throw new Error(`cannot check the control socket at ${path} (${answer}); not replacing it`);
  await unlink(path); // left behind by a run that crashed
}


/**
 * One connection to the control socket. Frames are handled one at a time: while a handler is
 * still at work (a session being opened), later frames wait, as OpenSSH's mux_pause does.
 */
export class ControlClient implements ControlConnection {
  state: ConnectionState = 'hello';
  exitSignals = false;
  private readonly parser = new FrameParser();
  private busy = false;
  private fdWaiter: { count: number; resolve(fds: number[]): void; reject(err: Error): void; timer: NodeJS.Timeout } | null = null;
  private readonly closeListeners: (() => void)[] = [];
  /** In proxy mode the bytes after the MUX_S_PROXY reply go here instead of the frame parser. */
  private rawReceiver: ((chunk: Buffer) => void) | null = null;

  constructor(
    readonly server: ControlSocketServer,
    private readonly sock: UnixConnection,
    readonly number: number,
  ) {}

  get log(): Logger {
    return this.server.log;
  }

  private get context(): Record<string, unknown> {
    return { master: this.server.master.id, client: this.number };
  }

  start(): void {
    // Received descriptors are close-on-exec already (MSG_CMSG_CLOEXEC); they come before the
    // bytes they were sent with.
    this.sock.on('data', (chunk, fds) => {
      if (fds.length > 0) {
        if (this.state === 'closed' || this.state === 'proxy') fds.forEach(closeQuietly);
        else this.parser.pushFds(fds);
        if (this.parser.heldFds > MAX_HELD_FDS) {
          this.protocolError(new ProtocolError(`${this.parser.heldFds} file descriptors passed that no request asked for`));
          return;
        }
      }
      if (chunk.length > 0) this.receive(chunk);
    });
    this.sock.on('end', () => this.close(null));
    this.sock.on('error', (err: Error) => this.close(`socket error: ${err.message}`));
    this.sock.on('close', () => this.close(null));
    this.send(reply.hello()); // the master speaks first
  }

  private receive(chunk: Buffer): void {
    if (this.state === 'closed') return;
    if (this.rawReceiver) {
      this.rawReceiver(chunk);
      return;
    }
    this.parser.push(chunk);
    this.pump();
    // While a request is at work, later frames wait in the parser: past a frame's worth, stop
    // reading until it is done, so that a client cannot make the buffer grow without bound.
    if (this.parser.buffered > MAX_FRAME) this.sock.pause();
  }

  /** Handles whatever whole frames (and passed descriptors) have arrived. */
  private pump(): void {
    try {
      while (this.state !== 'closed' && !this.rawReceiver) {
        if (this.fdWaiter) {
          const fds = this.parser.takeFds(this.fdWaiter.count);
          if (!fds) return;
          const waiter = this.fdWaiter;
          this.fdWaiter = null;
          clearTimeout(waiter.timer);
          waiter.resolve(fds);
          continue;
        }
        if (this.busy) return;
        const frame = this.parser.next();
        if (!frame) return;
        this.dispatch(frame);
      }
    } catch (err) {
      this.protocolError(err);
    }
  }

  private dispatch(frame: Frame): void {
    const msg = new MessageReader(frame.body);
    if (frame.type === MSG.HELLO) {
      if (this.state !== 'hello') throw new ProtocolError('HELLO received twice');
      const version = msg.u32('version');
      if (version !== 4) throw new ProtocolError(`unsupported multiplexing protocol version ${version} (expected 4)`);
      while (msg.remaining > 0) {
        const name = msg.cstring('extension name');
        msg.skipString('extension value');
        if (name === EXIT_SIGNAL_EXTENSION) this.exitSignals = true;
        else this.log.debug('control socket: unrecognised extension', { ...this.context, name });
      }
      this.state = 'ready';
      return;
    }
    if (this.state === 'hello') throw new ProtocolError(`expected HELLO, received ${typeName(frame.type)}`);
    const rid = msg.u32('request id');
    const handler = handlers.get(frame.type);
    if (!handler) {
      this.log.warn('control socket: unsupported request', { ...this.context, type: typeName(frame.type) });
      this.send(reply.failure(rid, 'unsupported request'));
      return;
    }
    if (this.state !== 'ready') {
      // A passenger's connection carries its one session; OpenSSH answers the same.
      this.log.warn('control socket: request on a busy connection', { ...this.context, type: typeName(frame.type) });
      this.send(reply.failure(rid, 'Multiple sessions not supported'));
      return;
    }
    const result = handler(this, rid, msg);
    const stray = this.fdWaiter ? [] : this.parser.takeStrayFds();
    if (stray.length > 0) {
      stray.forEach(closeQuietly);
      throw new ProtocolError(`${stray.length} file descriptor(s) passed with ${typeName(frame.type)}, which takes none`);
    }
    if (result instanceof Promise) {
      this.busy = true;
      result.then(
        () => {
          this.busy = false;
          this.pump();
          if (this.parser.buffered <= MAX_FRAME && this.state !== 'closed') this.sock.resume();
        },
        (err: unknown) => {
          this.busy = false;
          this.protocolError(err);
        },
      );
    }
  }

  private protocolError(err: unknown): void {
    if (this.state === 'closed') return;
    if (err instanceof ProtocolError) {
      this.log.warn('control socket: malformed input, connection closed', { ...this.context, reason: err.message });
      this.close(null);
    } else {
      this.log.error('control socket: request failed', { ...this.context, error: err instanceof Error ? err.message : String(err) });
      this.close(null);
    }
  }

  /**
   * The `count` descriptors the client passes right after the current request (stdin, stdout,
   * stderr for NEW_SESSION). They are close-on-exec, and the caller owns them.
   */
  receiveFds(count: number): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fdWaiter = null;
        reject(new ProtocolError('did not receive file descriptors'));
      }, FD_TIMEOUT_MS);
      this.fdWaiter = { count, resolve, reject, timer };
      queueMicrotask(() => this.pump());
    });
  }

  /** Writes one frame (or, in proxy mode, raw bytes). */
  send(data: Buffer): void {
    if (this.state === 'closed') return;
    this.sock.write(data);
    // Replies are small and proxy data is held to the client's window, so only a client that
    // stops reading gets here.
    if (this.sock.writableLength > MAX_UNREAD_BYTES) this.close(`the client left ${this.sock.writableLength} bytes unread`);
  }

  /** Bytes after the MUX_S_PROXY reply are SSH packets, handed to `receiver`. */
  enterProxyMode(receiver: (chunk: Buffer) => void): void {
    this.state = 'proxy';
    this.rawReceiver = receiver;
    const rest = this.parser.takeRest();
    this.sock.resume(); // from here the SSH windows bound what the client may send
    if (rest.length > 0) receiver(rest);
  }

  /** Runs when the connection closes, however it closes. */
  onClose(listener: () => void): void {
    if (this.state === 'closed') listener();
    else this.closeListeners.push(listener);
  }

  /**
   * Closes the connection once queued replies are written (the client reads them, then sees the
   * end). `reason` is logged; null for an ordinary end.
   */
  close(reason: string | null): void {
    if (this.state === 'closed') return;
    if (reason) this.log.info('control connection closed', { ...this.context, reason });
    this.state = 'closed';
    if (this.fdWaiter) {
      clearTimeout(this.fdWaiter.timer);
      this.fdWaiter.reject(new ProtocolError('connection closed before the file descriptors arrived'));
      this.fdWaiter = null;
    }
    this.parser.takeStrayFds().forEach(closeQuietly);
    for (const listener of this.closeListeners.splice(0)) {
      try {
        listener();
      } catch (err) {
        this.log.error('control connection cleanup failed', { ...this.context, error: String(err) });
      }
    }
    // Queued replies are written, then our end shut: the client reads them, then sees the end.
    this.sock.end();
    // A peer that never reads or never closes its end must not keep the descriptor open. The
    // timer goes as soon as the socket closes: it holds this connection (and all it reached),
    // which would otherwise outlive the session by LINGER_MS and age into the old generation.
    if (this.sock.isDestroyed) return;
    const sock = this.sock;
    const linger = setTimeout(() => sock.destroy(), LINGER_MS);
    linger.unref();
    sock.once('close', () => clearTimeout(linger));
  }
}

// One master's port forwards, whoever asked for them: Hitch (the app, `hitch forward`) or a
// stock client through the control socket (`ssh -O forward`). Local and dynamic forwards are
// listeners here whose connections go out as direct-tcpip channels; remote forwards are
// listeners on the server (ssh2 forwardIn on the master's primary connection) whose incoming
// connections Hitch carries onward.
//
// Forwards outlive reconnects: while the master reconnects, listeners here stay bound (a
// connection arriving meanwhile waits a bounded time for the master, or is closed), and remote
// forwards are asked for again on the new connection once it is ready. A master closed by the
// person ends the forwards nobody saved; saved ones stay listed as waiting, their ports let go,
// and come back when it connects again.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ForwardKind, ForwardView } from '../../../preload/api';
import { HitchError } from '../errors';
import type { Logger } from '../log';
import type { HostMaster } from '../masters/host-master';
import type { ForwardedConnectionInfo, MasterConnection } from '../masters/master';
import type { SavedForward } from './saved-forwards';
import { socksHandshake } from './socks';

/** How long a connection arriving while the master reconnects waits for it before it is closed. */
export const WAIT_FOR_MASTER_MS = 15_000;

/** What a forward is: where it listens and where its connections go. */
export type ForwardRequest = SavedForward;

export type ForwardOrigin = ForwardView['origin'];

export interface ForwardTableHooks {
  nextId(): string;
  /** The forward's state or settings changed: tell the clients now. */
  changed(forward: Forward): void;
  /** Only its counters moved: the clients hear of it a few times a second at most. */
  counted(forward: Forward): void;
  removed(forward: Forward): void;
  log: Logger;
}

/** OpenSSH keeps local and dynamic forwards in one list: both listen here. */
function listensHere(kind: ForwardKind): boolean {
  return kind !== 'remote';
}

export function sameRequest(a: ForwardRequest, b: ForwardRequest): boolean {
  return (
    listensHere(a.kind) === listensHere(b.kind) &&
    a.bindAddress === b.bindAddress &&
    a.listenPort === b.listenPort &&
    (a.kind === 'dynamic') === (b.kind === 'dynamic') &&
    a.connectHost === b.connectHost &&
    a.connectPort === b.connectPort
  );
}

/** `[::1]` -> `::1`: brackets only keep an IPv6 address apart from the port in a spec. */
function unbracket(address: string): string {
  return address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
}

/** Where a local or dynamic forward listens: loopback by default, every address for `*`. */
export function localListenHost(bindAddress: string): string | undefined {
  if (bindAddress === 'localhost') return '127.0.0.1';
  if (bindAddress === '*') return undefined;
  return unbracket(bindAddress);
}

/** The address a remote forward asks the server to listen on, as OpenSSH asks it ('' is every address). */
export function remoteBindAddress(bindAddress: string): string {
  return bindAddress === '*' ? '' : unbracket(bindAddress);
}

export function describeRequest(r: ForwardRequest): string {
  const listen = `${r.bindAddress}:${r.listenPort}`;
  if (r.kind === 'dynamic') return `dynamic forward ${listen}`;
  return `${r.kind} forward ${listen} -> ${r.connectHost}:${r.connectPort}`;
}

/** Binds a listener; a taken port is a `port-in-use` error naming the address and port. */
async function listen(bindAddress: string, port: number, onConnection: (sock: Socket) => void, log: Logger): Promise<Server> {
  const host = localListenHost(bindAddress);
  const server = createServer(onConnection);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const where = `${host ?? 'every address'} port ${port}`;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new HitchError('port-in-use', `Cannot listen on ${where}: the port is in use already. Pick another port, or stop what listens there.`);
    if (code === 'EACCES') throw new HitchError('permission-denied', `Cannot listen on ${where}: ports below 1024 need privileges. Pick a port above 1023.`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      throw new HitchError('bad-request', `Cannot listen on ${where}: ${bindAddress} is not an address of this computer.`);
    }
    throw new HitchError('bad-request', `Cannot listen on ${where}: ${(err as Error).message}`);
  }
  // Once listening, a failure to accept (out of descriptors) is logged: an 'error' event with
  // no listener would end the process.
  server.on('error', (err: Error) => log.warn('forward listener failed', { listen: `${host ?? '*'}:${port}`, error: err.message }));
  return server;
}

/** A forward's last port, found taken, is tried this many times this far apart before another is taken. */
const PORT_RETRIES = 5;
const PORT_RETRY_MS = 200;

/** One forward in the table; its view is what the API shows. */
export class Forward {
  state: ForwardView['state'] = 'waiting';
  error: string | null = null;
  boundPort: number | null = null;
  /**
   * The port it was last bound to. A forward asked for port 0 (any) asks for this one again
   * when it is set up anew (a reconnect, a master closed and connected again), so that what
   * the person pointed at it keeps working; another one only when this one is taken.
   */
  lastPort: number | null = null;
  saved = false;
  connections = 0;
  totalConnections = 0;
  bytesIn = 0;
  bytesOut = 0;
  removed = false;
  /** Local and dynamic: the listener here, kept bound across reconnects. */
  server: Server | null = null;
  /** Remote: the connection it was asked on, with the address and port the server listens on. */
  remote: { connection: MasterConnection; bind: string; port: number } | null = null;
  /** A set-up under way (one at a time). */
  settingUp: Promise<void> | null = null;

  bound(port: number): void {
    this.boundPort = port;
    this.lastPort = port;
  }

  /** The port to ask for: the one asked for, or for "any" the one it had. */
  get wantedPort(): number {
    return this.request.listenPort === 0 && this.lastPort !== null ? this.lastPort : this.request.listenPort;
  }

  constructor(
    readonly id: string,
    readonly hostId: string,
    readonly masterId: string,
    readonly origin: ForwardOrigin,
    readonly request: ForwardRequest,
  ) {}

  get kind(): ForwardKind {
    return this.request.kind;
  }

  view(): ForwardView {
    const r = this.request;
    return {
      id: this.id,
      hostId: this.hostId,
      masterId: this.masterId,
      kind: r.kind,
      bindAddress: r.bindAddress,
      listenPort: r.listenPort,
      boundPort: this.state === 'active' ? this.boundPort : null,
      connectHost: r.connectHost,
      connectPort: r.connectPort,
      state: this.state,
      error: this.error,
      origin: this.origin,
      saved: this.saved,
      connections: this.connections,
      totalConnections: this.totalConnections,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
    };
  }
}

export class ForwardTable {
  private entries: Forward[] = [];
  /** The primary connection remote forwards are asked on and arrive over; null while not ready. */
  private routed: MasterConnection | null = null;
  /** Connections waiting for the master: woken (true) when it is ready, failed (false) when it was closed. */
  private readonly readyWaiters = new Set<(ready: boolean) => void>();

  constructor(
    readonly master: HostMaster,
    /** The alias it serves first: a stock client's forwards are shown under it. */
    readonly hostId: string,
    private readonly hooks: ForwardTableHooks,
  ) {
    master.on('changed', () => this.sync());
    this.sync();
  }

  list(): Forward[] {
    return [...this.entries];
  }

  get(id: string): Forward | undefined {
    return this.entries.find((f) => f.id === id);
  }

  find(request: ForwardRequest, hostId?: string): Forward | undefined {
    return this.entries.find((f) => sameRequest(f.request, request) && (hostId === undefined || f.hostId === hostId));
  }

  /**
   * Sets up a forward now (the master must be ready) and adds it; an identical one already
   * there is returned as it is. Throws, adding nothing, when it cannot be set up: a port in
   * use, a listen the server refused.
   */
  async open(request: ForwardRequest, origin: ForwardOrigin, hostId: string = this.hostId): Promise<Forward> {
    // Asked twice, it is the same forward (as OpenSSH answers); Hitch's own are per alias.
    const existing = origin === 'hitch' ? this.entries.find((f) => f.origin === 'hitch' && f.hostId === hostId && sameRequest(f.request, request)) : this.find(request);
    if (existing) return existing;
    this.sync();
    const forward = new Forward(this.hooks.nextId(), hostId, this.master.id, origin, request);
    if (request.kind === 'remote') {
      const connection = this.routed;
      if (!connection) throw new HitchError('not-connected', `${this.master.id} is not connected.`);
      await this.listenRemote(forward, connection);
    } else {
      forward.server = await listen(request.bindAddress, request.listenPort, (sock) => this.accepted(forward, sock), this.hooks.log);
      forward.bound((forward.server.address() as { port: number }).port);
    }
    forward.state = 'active';
    this.add(forward);
    this.hooks.log.info('forward opened', { master: this.master.id, id: forward.id, origin, forward: describeRequest(request), port: forward.boundPort });
    return forward;
  }

  /**
   * A saved forward of `hostId`: listed as waiting until the master is ready, then set up. A
   * failure shows on the forward (`failed`, with the error) and is tried again next connect.
   */
  restore(request: ForwardRequest, hostId: string, lastPort: number | null = null): Forward {
    const existing = this.find(request, hostId);
    if (existing) {
      existing.saved = true;
      this.hooks.changed(existing);
      return existing;
    }
    const forward = new Forward(this.hooks.nextId(), hostId, this.master.id, 'hitch', request);
    forward.saved = true;
    forward.lastPort = lastPort;
    this.add(forward);
    if (this.routed) void this.setUp(forward);
    return forward;
  }

  private add(forward: Forward): void {
    this.entries.push(forward);
    this.master.retain(); // a forward keeps the master from idling out
    this.hooks.changed(forward);
  }

  /** Ends a forward: no new connections; the ones it carries now go on, as with OpenSSH. */
  async cancel(forward: Forward): Promise<void> {
    if (forward.removed) return;
    this.remove(forward);
    await this.stop(forward);
    this.hooks.log.info('forward cancelled', { master: this.master.id, id: forward.id, forward: describeRequest(forward.request) });
  }

  private remove(forward: Forward): void {
    forward.removed = true;
    this.entries = this.entries.filter((f) => f !== forward);
    this.master.release();
    this.hooks.removed(forward);
  }

  /** Lets go of what the forward holds: its listener here, or its listen on the server. */
  private async stop(forward: Forward): Promise<void> {
    const server = forward.server;
    forward.server = null;
    const remote = forward.remote;
    forward.remote = null;
    forward.boundPort = null;
    // It stops listening at once; close()'s callback would wait for the connections it carries.
    server?.close();
    if (remote && remote.connection.state === 'ready') {
      await remote.connection.unforwardIn(remote.bind, remote.port).catch((err: Error) => {
        this.hooks.log.info('remote forward not cancelled on the server', { master: this.master.id, id: forward.id, error: err.message });
      });
    }
  }

  /** Ends every forward (the engine is shutting down): listeners closed, nothing forgotten. */
  async closeAll(): Promise<void> {
    const all = this.entries;
    for (const f of all) this.remove(f);
    await Promise.all(all.map((f) => this.stop(f)));
  }

  // -- following the master ----------------------------------------------------------------

  private sync(): void {
    const state = this.master.state;
    const primary = state === 'ready' ? (this.master.readyConnections()[0] ?? null) : null;
    if (primary) {
      if (primary === this.routed) return;
      this.routed = primary;
      this.route(primary);
      for (const wake of [...this.readyWaiters]) wake(true);
      for (const f of this.entries) void this.setUp(f);
      return;
    }
    if (this.routed) {
      this.routed = null;
      // The remote listens ended with the connection; listeners here wait for the next one.
      for (const f of this.entries) {
        if (f.kind === 'remote') {
          f.remote = null;
          f.boundPort = null;
        }
        if (f.state === 'active') {
          f.state = 'waiting';
          this.hooks.changed(f);
        }
      }
    }
    if (state === 'closed') this.masterClosed();
  }

  /** The person closed the master (or it ended cleanly): unsaved forwards end, saved ones let their ports go and wait. */
  private masterClosed(): void {
    for (const wake of [...this.readyWaiters]) wake(false);
    for (const f of [...this.entries]) {
      if (!f.saved) {
        this.remove(f);
        void this.stop(f);
      } else if (f.server || f.state !== 'waiting' || f.error !== null) {
        void this.stop(f);
        f.state = 'waiting';
        f.error = null;
        this.hooks.changed(f);
      }
    }
  }

  /** Sets up what a forward lacks on the master's ready connection; failures show on the forward. */
  private setUp(forward: Forward): Promise<void> {
    if (!forward.settingUp) {
      const connection = this.routed;
      forward.settingUp = this.setUpNow(forward, connection).finally(() => {
        forward.settingUp = null;
        // The master moved to another connection meanwhile (a set-up that called for it
        // joined this one): set up again there.
        if (!forward.removed && this.routed !== null && this.routed !== connection) void this.setUp(forward);
      });
    }
    return forward.settingUp;
  }

  private async setUpNow(forward: Forward, connection: MasterConnection | null): Promise<void> {
    if (!connection || forward.removed) return;
    try {
      if (forward.kind === 'remote') {
        if (forward.remote?.connection !== connection) await this.listenRemote(forward, connection);
      } else if (!forward.server) {
        const server = await this.withPortTaken(forward, (port) => listen(forward.request.bindAddress, port, (sock) => this.accepted(forward, sock), this.hooks.log), {
          taken: (err) => err instanceof HitchError && err.code === 'port-in-use',
          current: () => !forward.removed && this.routed === connection,
        });
        // Gone, or the master closed or moved meanwhile: the set-up on its next connection binds.
        if (forward.removed || this.routed !== connection) {
          server.close();
          return;
        }
        forward.server = server;
        forward.bound((server.address() as { port: number }).port);
      }
    } catch (err) {
      if (forward.removed || this.routed !== connection) return; // the master went meanwhile: it waits
      forward.state = 'failed';
      forward.error = (err as Error).message;
      this.hooks.log.warn('forward could not be set up', { master: this.master.id, id: forward.id, forward: describeRequest(forward.request), error: forward.error });
      this.hooks.changed(forward);
      return;
    }
    if (forward.removed || this.routed !== connection) return;
    forward.state = 'active';
    forward.error = null;
    this.hooks.changed(forward);
  }

  /** Resolves once the master is ready; rejects after `timeoutMs`, or at once when it was closed by the person. */
  private whenReady(timeoutMs: number): Promise<void> {
    if (this.routed) return Promise.resolve();
    if (this.master.state === 'closed') return Promise.reject(new Error('the master is closed'));
    return new Promise((resolve, reject) => {
      const wake = (ready: boolean): void => {
        clearTimeout(timer);
        this.readyWaiters.delete(wake);
        if (ready) resolve();
        else reject(new Error('the master was closed'));
      };
      const timer = setTimeout(() => {
        this.readyWaiters.delete(wake);
        reject(new Error(`the master was not back within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.readyWaiters.add(wake);
    });
  }

  // -- local and dynamic: Hitch listens ------------------------------------------------------

  private accepted(forward: Forward, sock: Socket): void {
    sock.setNoDelay(true);
    sock.on('error', () => sock.destroy());
    const r = forward.request;
    const target =
      r.kind === 'dynamic' ? socksHandshake(sock) : Promise.resolve({ host: r.connectHost!, port: r.connectPort!, done: (ok: boolean) => void ok });
    target
      .then(async ({ host, port, done }) => {
        let channel;
        try {
          await this.whenReady(WAIT_FOR_MASTER_MS);
          channel = await this.master.forwardOut(host, port);
        } catch (err) {
          done(false);
          throw err;
        }
        if (sock.destroyed) {
          channel.close();
          return;
        }
        done(true);
        this.carry(forward, sock, channel);
      })
      .catch((err: Error) => {
        this.hooks.log.info('forwarded connection failed', { master: this.master.id, id: forward.id, error: err.message });
        sock.destroy();
      });
  }

  // -- remote: the server listens ------------------------------------------------------------

  private async listenRemote(forward: Forward, connection: MasterConnection): Promise<void> {
    const bind = remoteBindAddress(forward.request.bindAddress);
    // sshd's refusal gives no reason: a port still held by a connection it has not yet seen end is one.
    const port = await this.withPortTaken(forward, (wanted) => connection.forwardIn(bind, wanted), {
      taken: (err) => err instanceof HitchError && err.code === 'channel',
      current: () => !forward.removed && this.routed === connection,
    });
    if (forward.removed) {
      await connection.unforwardIn(bind, port).catch(() => undefined);
      return;
    }
    forward.remote = { connection, bind, port };
    forward.bound(port);
  }

  /**
   * Binds with `bind(port)` on the port the forward wants. A forward asked for any port whose
   * last one is taken tries it again for a moment (on the server, the connection that held it
   * may not have ended yet: sshd lets it go once it sees the reset), then takes any other and
   * says so in the log.
   */
  private async withPortTaken<T>(
    forward: Forward,
    bind: (port: number) => Promise<T>,
    is: { taken: (err: unknown) => boolean; current: () => boolean },
  ): Promise<T> {
    const wanted = forward.wantedPort;
    for (let attempt = 1; ; attempt++) {
      try {
        return await bind(wanted);
      } catch (err) {
        // Asked for a port of its own, failed for another reason, or no longer wanted here: as it is.
        if (wanted === forward.request.listenPort || !is.taken(err) || !is.current()) throw err;
        if (attempt < PORT_RETRIES) {
          await new Promise((r) => setTimeout(r, PORT_RETRY_MS));
          if (!is.current()) throw err;
          continue;
        }
        this.hooks.log.info('forward port taken: another one is used', { master: this.master.id, id: forward.id, port: wanted, error: (err as Error).message });
        return bind(forward.request.listenPort);
      }
    }
  }

  /** Connections the server forwards arrive on the connection that asked; each goes to its target. */
  private route(connection: MasterConnection): void {
    connection.onForwardedConnection = (info: ForwardedConnectionInfo, accept, reject) => {
      const forward = this.entries.find((f) => f.remote?.connection === connection && f.remote.bind === info.destIP && f.remote.port === info.destPort);
      if (!forward) {
        reject();
        return;
      }
      const { connectHost, connectPort } = forward.request;
      const target = connect({ host: connectHost!, port: connectPort! });
      target.setNoDelay(true);
      target.once('error', (err: Error) => {
        this.hooks.log.info('remote forward target refused', { master: this.master.id, id: forward.id, error: err.message });
        reject();
      });
      target.once('connect', () => {
        target.removeAllListeners('error');
        target.on('error', () => target.destroy());
        this.carry(forward, target, accept());
      });
    };
  }

  // -- carrying a connection -----------------------------------------------------------------

  /** Joins a socket here and a channel both ways, counting what goes through; either closing ends the other. */
  private carry(forward: Forward, local: Duplex, channel: Duplex): void {
    forward.connections++;
    forward.totalConnections++;
    this.hooks.changed(forward);
    let open = true;
    const close = (): void => {
      local.destroy();
      channel.destroy();
      if (!open) return;
      open = false;
      forward.connections--;
      this.hooks.changed(forward);
    };
    local.on('error', close).on('close', close);
    channel.on('error', close).on('close', close);
    channel.on('data', (chunk: Buffer) => {
      forward.bytesIn += chunk.length;
      this.hooks.counted(forward);
    });
    local.on('data', (chunk: Buffer) => {
      forward.bytesOut += chunk.length;
      this.hooks.counted(forward);
    });
    local.pipe(channel);
    channel.pipe(local);
  }
}

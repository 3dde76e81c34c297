// Port forwards a stock client asks a master for (`ssh -O forward`, or -L/-R/-D with `ssh -S`):
// local listeners whose connections go out as direct-tcpip channels, a SOCKS 4/4a/5 listener
// for dynamic forwards, and remote forwards (the server listens, Hitch connects each incoming
// connection onward). They belong to the master, outlive the client that asked, and end with
// the master or `ssh -O cancel`.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log';
import type { ForwardedConnectionInfo, MasterConnection } from '../masters/master';
import { FWD } from './frames';
import type { MasterPort } from './master-port';
import { socksHandshake } from './socks';

export interface ForwardSpec {
  type: number;
  /** As the client sent it: '' for the default address, '*' for every address. */
  listenHost: string;
  listenPort: number;
  connectHost: string;
  connectPort: number;
}

interface ActiveForward {
  spec: ForwardSpec;
  /** A remote forward's port as the server bound it (the asked port unless that was 0). */
  boundPort: number;
  /** The bind address a remote forward was requested with. */
  bindAddress: string;
  close(): Promise<void>;
}

function same(a: ForwardSpec, b: ForwardSpec): boolean {
  const kind = (t: number): number => (t === FWD.DYNAMIC ? FWD.LOCAL : t); // OpenSSH keeps both in one list
  return kind(a.type) === kind(b.type) && a.listenHost === b.listenHost && a.listenPort === b.listenPort && a.connectHost === b.connectHost && a.connectPort === b.connectPort;
}

export function describeForward(spec: ForwardSpec): string {
  const listen = `${spec.listenHost || 'localhost'}:${spec.listenPort}`;
  if (spec.type === FWD.DYNAMIC) return `dynamic forward ${listen}`;
  return `${spec.type === FWD.REMOTE ? 'remote' : 'local'} forward ${listen} -> ${spec.connectHost}:${spec.connectPort}`;
}

/** Joins two streams both ways; either side failing or closing ends the other. */
export function splice(a: Duplex, b: Duplex): void {
  const close = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close).on('close', close);
  b.on('error', close).on('close', close);
  a.pipe(b);
  b.pipe(a);
}

export class Forwards {
  private active: ActiveForward[] = [];
  private routed: MasterConnection | null = null;

  constructor(
    private readonly master: MasterPort,
    private readonly log: Logger,
  ) {}

  list(): ForwardSpec[] {
    return this.active.map((f) => f.spec);
  }

  /** Sets up a forward; an identical one already up is fine. Throws when it cannot be set up. */
  async open(spec: ForwardSpec): Promise<{ allocatedPort: number | null }> {
    const existing = this.active.find((f) => same(f.spec, spec));
    if (existing) return { allocatedPort: spec.type === FWD.REMOTE && spec.listenPort === 0 ? existing.boundPort : null };
    const forward = spec.type === FWD.REMOTE ? await this.openRemote(spec) : await this.openListener(spec);
    this.active.push(forward);
    this.master.retain();
    this.log.info('forward opened', { master: this.master.id, forward: describeForward(spec), port: forward.boundPort });
    return { allocatedPort: spec.type === FWD.REMOTE && spec.listenPort === 0 ? forward.boundPort : null };
  }

  async cancel(spec: ForwardSpec): Promise<void> {
    const forward = this.active.find((f) => same(f.spec, spec));
    if (!forward) throw new Error('port not forwarded');
    this.active = this.active.filter((f) => f !== forward);
    this.master.release();
    await forward.close();
    this.log.info('forward cancelled', { master: this.master.id, forward: describeForward(spec) });
  }

  /** Ends every forward: the master is closing. */
  closeAll(): void {
    const all = this.active;
    this.active = [];
    for (const f of all) {
      this.master.release();
      f.close().catch(() => undefined);
    }
  }

  // -- local and dynamic: Hitch listens -----------------------------------------------------

  private async openListener(spec: ForwardSpec): Promise<ActiveForward> {
    const server: Server = createServer((sock) => this.accepted(spec, sock));
    // Where asked; by default loopback only, never every interface unless '*' says so.
    const host = spec.listenHost === '' ? '127.0.0.1' : spec.listenHost === '*' ? undefined : spec.listenHost;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: spec.listenPort }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err: Error) => this.log.warn('forward listener failed', { master: this.master.id, error: err.message }));
    const address = server.address();
    const boundPort = typeof address === 'object' && address ? address.port : spec.listenPort;
    return {
      spec,
      boundPort,
      bindAddress: host ?? '*',
      // Connections already forwarded go on, as with OpenSSH.
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  private accepted(spec: ForwardSpec, sock: Socket): void {
    sock.setNoDelay(true);
    sock.on('error', () => sock.destroy());
    const target =
      spec.type === FWD.DYNAMIC
        ? socksHandshake(sock)
        : Promise.resolve({ host: spec.connectHost, port: spec.connectPort, done: (ok: boolean) => void ok });
    target
      .then(async ({ host, port, done }) => {
        let channel;
        try {
          channel = await this.master.forwardOut(host, port);
        } catch (err) {
          done(false);
          throw err;
        }
        done(true);
        splice(sock, channel);
      })
      .catch((err: Error) => {
        this.log.info('forwarded connection failed', { master: this.master.id, forward: describeForward(spec), error: err.message });
        sock.destroy();
      });
  }

  // -- remote: the server listens ---------------------------------------------------------

  private async openRemote(spec: ForwardSpec): Promise<ActiveForward> {
    const connection = this.master.primary();
    if (!connection) throw new Error('the master is not connected');
    // As OpenSSH asks: loopback unless an address (or '*', every address) was given.
    const bindAddress = spec.listenHost === '' ? 'localhost' : spec.listenHost === '*' ? '' : spec.listenHost;
    const boundPort = await connection.forwardIn(bindAddress, spec.listenPort);
    this.route(connection);
    return {
      spec,
      boundPort,
      bindAddress,
      close: async () => {
        if (connection.state === 'ready') await connection.unforwardIn(bindAddress, boundPort);
      },
    };
  }

  /** Connections the server forwards arrive on the connection that asked; each goes to its target. */
  private route(connection: MasterConnection): void {
    if (this.routed === connection) return;
    this.routed = connection;
    connection.onForwardedConnection = (info: ForwardedConnectionInfo, accept, reject) => {
      const forward = this.active.find((f) => f.spec.type === FWD.REMOTE && f.bindAddress === info.destIP && f.boundPort === info.destPort);
      if (!forward) {
        reject();
        return;
      }
      const target = connect({ host: forward.spec.connectHost, port: forward.spec.connectPort });
      target.setNoDelay(true);
      target.once('error', (err: Error) => {
        this.log.info('remote forward target refused', { master: this.master.id, forward: describeForward(forward.spec), error: err.message });
        reject();
      });
      target.once('connect', () => {
        target.removeAllListeners('error');
        splice(target, accept());
      });
    };
  }
}

// Every master's control socket over its life: created when the master is ready, removed when
// it is not (closed, failed, reconnecting), never again after `ssh -O stop` until the master
// has closed. The path is on the master (HostMaster.controlPath) for the UI and the ssh config
// snippet. Forwards asked for through the socket go on the master's forward table
// (engine/forwards/), which follows the master's life.
import type { HostMaster } from '../masters/host-master';
import type { Logger } from '../log';
import type { ForwardTable } from '../forwards/forward-table';
import { ControlSocketForwards } from './forwards';
import type { MasterPort } from './master-port';
import { ControlSocketServer } from './server';
import { controlPathFor, controlPathProblem, preparePrivateDir, type Destination } from './socket-path';
import { loadUnix } from '../../native/unix';

export { defaultControlSocketDir, controlPathFor } from './socket-path';
export type { MasterPort, ExternalSessionSpec } from './master-port';

export interface ControlSocketsOptions {
  /** The private directory the sockets live in. */
  dir: string;
  log: Logger;
}

interface Served {
  path: string;
  /** How the socket reaches into its master (built by the engine). */
  port: MasterPort;
  /** The master's forward table (the engine's). */
  table: ForwardTable;
  server: ControlSocketServer | null;
  forwards: ControlSocketForwards | null;
  /** `ssh -O stop` was asked while this master was up. */
  stopped: boolean;
  /** Changes are applied one at a time, in order. */
  queue: Promise<void>;
}

export class ControlSockets {
  private readonly served = new Map<HostMaster, Served>();
  private unavailable: string | null = null;
  /** The app is quitting: no socket is created any more. */
  private closed = false;

  constructor(private readonly opts: ControlSocketsOptions) {}

  /** Where the destination's socket is (or would be). */
  pathFor(dest: Destination): string {
    return controlPathFor(this.opts.dir, dest);
  }

  /** Serves a socket for this master whenever it is ready. Called once per master. */
  manage(master: HostMaster, dest: Destination, port: MasterPort, table: ForwardTable): void {
    if (this.served.has(master)) return;
    const served: Served = { path: this.pathFor(dest), port, table, server: null, forwards: null, stopped: false, queue: Promise.resolve() };
    this.served.set(master, served);
    master.on('changed', () => this.sync(master, served));
    this.sync(master, served);
  }

  /** Resolves once the master's socket matches its state (created, say, right after it became ready). */
  settled(master: HostMaster): Promise<void> {
    return this.served.get(master)?.queue ?? Promise.resolve();
  }

  private sync(master: HostMaster, served: Served): void {
    served.queue = served.queue.then(() => this.apply(master, served)).catch((err: Error) => {
      this.opts.log.error('control socket change failed', { master: master.id, error: err.message });
    });
  }

  private async apply(master: HostMaster, served: Served): Promise<void> {
    if (master.state !== 'ready' || this.closed) {
      served.stopped = false; // the master's next life serves again
      if (served.server) await this.stop(master, served);
    } else if (!served.stopped && !served.server) {
      await this.start(master, served);
    } else if (served.stopped && served.server?.listening) {
      // `ssh -O stop`: the socket goes, its sessions and the forwards carry on.
      await served.server.stopListening();
      master.setControlPath(null);
    }
  }

  private async start(master: HostMaster, served: Served): Promise<void> {
    if (this.unavailable) return;
    const problem = controlPathProblem(served.path);
    if (problem) {
      this.opts.log.warn('no control socket', { master: master.id, reason: problem });
      return;
    }
    let unix;
    try {
      unix = await loadUnix();
    } catch (err) {
      this.unavailable = (err as Error).message;
      this.opts.log.warn('control sockets unavailable', { reason: this.unavailable });
      return;
    }
    const port = served.port;
    served.forwards ??= new ControlSocketForwards(served.table);
    try {
      await preparePrivateDir(this.opts.dir);
      served.server = await ControlSocketServer.listen({
        path: served.path,
        master: port,
        forwards: served.forwards,
        unix,
        log: this.opts.log,
        onStopListening: () => {
          served.stopped = true;
          this.sync(master, served);
        },
      });
    } catch (err) {
      this.opts.log.warn('no control socket', { master: master.id, path: served.path, reason: (err as Error).message });
      return;
    }
    master.setControlPath(served.path);
  }

  /** The master is down: its socket and its clients go (its forward table decides about the forwards). */
  private async stop(master: HostMaster, served: Served): Promise<void> {
    const server = served.server!;
    served.server = null;
    master.setControlPath(null);
    await server.close();
  }

  /** Removes every socket (the app is quitting), after any being created now. */
  async shutdown(): Promise<void> {
    this.closed = true;
    for (const [master, served] of this.served) this.sync(master, served);
    await Promise.all([...this.served.values()].map((served) => served.queue));
  }
}

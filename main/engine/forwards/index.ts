// Every master's port forwards in one place for the engine: a ForwardTable per master (shared
// with its control socket, so `ssh -O forward` ones are listed too), ids unique in this run
// (`f1`…), the saved forwards file, and the `forward.changed`/`forward.removed` events, with
// counter updates held to a few a second per forward.
import type { ForwardView, HitchEvent } from '../../../preload/api';
import { HitchError } from '../errors';
import type { Logger } from '../log';
import type { HostMaster } from '../masters/host-master';
import { Forward, ForwardTable, type ForwardRequest } from './forward-table';
import { SavedForwards } from './saved-forwards';

export { ForwardTable, Forward, type ForwardRequest } from './forward-table';

/** Counter updates of one forward are sent at most this often. */
const COUNTER_EVENT_MS = 250;

export interface PortForwardsOptions {
  /** The saved forwards file (in the data directory). */
  file: string;
  log: Logger;
  emit(event: HitchEvent): void;
}

export class PortForwards {
  private readonly tables = new Map<HostMaster, ForwardTable>();
  /** Aliases whose saved forwards were put on their master's table. */
  private readonly restored = new Set<string>();
  private readonly saved: SavedForwards;
  private readonly counterTimers = new Map<string, NodeJS.Timeout>();
  private nextId = 1;

  constructor(private readonly opts: PortForwardsOptions) {
    this.saved = new SavedForwards(opts.file, opts.log);
  }

  /** Reads the saved forwards; a file that cannot be used is kept aside and reported in the log. */
  load(): Promise<void> {
    return this.saved.load();
  }

  /** Hosts with saved forwards: their masters are worth connecting at start. */
  savedForwardHosts(): string[] {
    return this.saved.hostIds();
  }

  /**
   * The master's table, made on first use; `hostId`'s saved forwards are put on it (waiting
   * until the master is ready). Called whenever an alias uses the master.
   */
  attach(master: HostMaster, hostId: string): ForwardTable {
    let table = this.tables.get(master);
    if (!table) {
      table = new ForwardTable(master, hostId, {
        nextId: () => `f${this.nextId++}`,
        changed: (f) => this.changed(f),
        counted: (f) => this.counted(f),
        removed: (f) => this.removed(f),
        log: this.opts.log,
      });
      this.tables.set(master, table);
    }
    if (!this.restored.has(hostId)) {
      this.restored.add(hostId);
      for (const { lastPort, ...request } of this.saved.of(hostId)) table.restore(request, hostId, lastPort ?? null);
    }
    return table;
  }

  list(masterId?: string): ForwardView[] {
    const out: ForwardView[] = [];
    for (const table of this.tables.values()) {
      if (masterId === undefined || table.master.id === masterId) out.push(...table.list().map((f) => f.view()));
    }
    return out.sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)));
  }

  /** Sets up a forward on a ready master; `save` keeps it with the host. */
  async open(master: HostMaster, hostId: string, request: ForwardRequest, save: boolean): Promise<ForwardView> {
    const table = this.attach(master, hostId);
    const forward = await table.open(request, 'hitch', hostId);
    if (save && !forward.saved) await this.setSaved(forward, true);
    return forward.view();
  }

  async cancel(id: string): Promise<void> {
    const { table, forward } = this.lookup(id);
    if (forward.saved) await this.saved.remove(forward.hostId, forward.request);
    await table.cancel(forward);
  }

  async save(id: string, saved: boolean): Promise<ForwardView> {
    const { table, forward } = this.lookup(id);
    if (forward.saved !== saved) await this.setSaved(forward, saved);
    // No longer kept, on a master the person closed: it ends, as unsaved ones did when it closed.
    if (!saved && table.master.state === 'closed') await table.cancel(forward);
    return forward.view();
  }

  private async setSaved(forward: Forward, saved: boolean): Promise<void> {
    if (saved && forward.origin !== 'hitch') {
      throw new HitchError('bad-request', `Forward ${forward.id} was opened by a stock client through the control socket (ssh -O forward): it ends with that master, and cannot be saved. Open it in Hitch to keep it.`);
    }
    if (saved) await this.saved.add(forward.hostId, forward.request);
    else await this.saved.remove(forward.hostId, forward.request);
    forward.saved = saved;
    this.changed(forward);
  }

  private lookup(id: string): { table: ForwardTable; forward: Forward } {
    for (const table of this.tables.values()) {
      const forward = table.get(id);
      if (forward) return { table, forward };
    }
    throw new HitchError('bad-request', `No forward ${id}: it was cancelled, or ended with its master.`);
  }

  /** Closes every listener (the engine is shutting down); saved forwards stay saved. */
  async shutdown(): Promise<void> {
    await Promise.all([...this.tables.values()].map((t) => t.closeAll()));
    for (const timer of this.counterTimers.values()) clearTimeout(timer);
    this.counterTimers.clear();
  }

  // -- events ------------------------------------------------------------------------------

  private changed(forward: Forward): void {
    if (forward.saved && forward.request.listenPort === 0 && forward.boundPort !== null) {
      void this.saved.rememberPort(forward.hostId, forward.request, forward.boundPort).catch(() => undefined); // a failed save is logged there
    }
    const timer = this.counterTimers.get(forward.id);
    if (timer) clearTimeout(timer);
    this.counterTimers.delete(forward.id);
    this.opts.emit({ event: 'forward.changed', payload: forward.view() });
  }

  private counted(forward: Forward): void {
    if (this.counterTimers.has(forward.id)) return;
    const timer = setTimeout(() => {
      this.counterTimers.delete(forward.id);
      if (!forward.removed) this.opts.emit({ event: 'forward.changed', payload: forward.view() });
    }, COUNTER_EVENT_MS);
    timer.unref();
    this.counterTimers.set(forward.id, timer);
  }

  private removed(forward: Forward): void {
    const timer = this.counterTimers.get(forward.id);
    if (timer) clearTimeout(timer);
    this.counterTimers.delete(forward.id);
    this.opts.emit({ event: 'forward.removed', payload: { forwardId: forward.id } });
  }
}

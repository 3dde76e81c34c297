// The remote process trees of each master and the signals sent into them. Per connection,
// a monitor channel takes `ps` snapshots; each snapshot names every session's first process
// (the new children of the connection's sshd process, in the order the sessions opened),
// labels every process with its session, keeps processes that outlived their session as
// detached, and sends the UI only what changed.
import type { ProcessView, SignalName, SignalOutcome, SignalScope } from '../../../preload/api';
import { HitchError } from '../errors';
import type { HostMaster } from '../masters/host-master';
import type { Logger } from '../log';
import type { MasterConnection } from '../masters/master';
import { ProcessMonitor } from './monitor';
import { buildTree, descendants, diffTrees, remember, rootCandidates } from './process-tree';
import type { DurableShell } from '../sessions/durable-shell';
import type { Session } from '../sessions/session';

interface Tracker {
  monitor: Promise<ProcessMonitor> | null;
  /** Sessions on this connection, in the order they opened, still without a known root pid. */
  pending: Session[];
  roots: Map<string, number>;
  /** tmux clients carrying durable shells: children of sshd, but no session's and not shown. */
  carriers: Set<number>;
  /** Start times (s) of processes seen in this connection's tree. */
  known: Map<number, number>;
  /** The connection's sshd process, learned by its own monitor: another connection's can watch it then. */
  sshdPid: number | null;
  /** The machine its own monitor ran on (ProcessMonitor.machine): only a monitor on the same one can watch it. */
  machine: string | null;
  /** Its own monitor's shell, hidden from its tree even after the monitor gave its slot up. */
  ownMonitorPid: number | null;
  /** Why no monitor could see this connection at the last snapshot (logged once, not at every one). */
  unseen: string | null;
}

interface Watch {
  timer: NodeJS.Timeout | null;
  intervalMs: number;
  /** The watch lapses unless renewed: a closed or hidden window stops asking. */
  until: number;
}

export interface ProcessTreesDeps {
  log: Logger;
  emitChanged(masterId: string, upserted: ProcessView[], removed: number[]): void;
  emitSession(session: Session): void;
  sessionsOf(master: HostMaster): Session[];
}

export const WATCH_LEASE_FACTOR = 3;
/** A tree seen this recently is the one a signal is checked against (no snapshot of its own). */
const FRESH_TREE_MS = 2_000;
/**
 * Signals that usually end a process, and how long the host waits at most to report it gone
 * (the answer comes as soon as it is). 200 ms was too short on a loaded host: a `sleep` sent
 * TERM was once reported alive (a test run with three files at once on two cores).
 */
const ENDING_SIGNALS = ['TERM', 'INT', 'HUP', 'QUIT', 'KILL'] as const;
const SIGNAL_SETTLE_MS = 1_000;
const MAX_CONCURRENT_SNAPSHOTS = 4;

export class ProcessTrees {
  private readonly trackers = new WeakMap<MasterConnection, Tracker>();
  /** What the UI was last sent, per master, and when that snapshot was taken. */
  private readonly sent = new Map<string, Map<number, ProcessView>>();
  private readonly sentAt = new Map<string, number>();
  private readonly watches = new Map<string, Watch>();
  /** Signals under way per master: the monitor must outlive the sessions they end. */
  private readonly signalling = new Map<string, number>();

  constructor(private readonly deps: ProcessTreesDeps) {}

  private tracker(connection: MasterConnection): Tracker {
    let t = this.trackers.get(connection);
    if (!t) {
      t = { monitor: null, pending: [], roots: new Map(), carriers: new Set(), known: new Map(), sshdPid: null, machine: null, ownMonitorPid: null, unseen: null };
      this.trackers.set(connection, t);
    }
    return t;
  }

  private monitor(connection: MasterConnection): Promise<ProcessMonitor> {
    const t = this.tracker(connection);
    let current = t.monitor;
    if (!current) {
      const started = ProcessMonitor.start(connection);
      current = t.monitor = started;
      started.catch(() => t.monitor === started && (t.monitor = null));
    }
    const mine = current;
    return mine.then(async (m) => {
      if (m.usable) return m;
      // Another caller may have started the next one already: never two at once.
      if (t.monitor === mine) t.monitor = null;
      return this.monitor(connection);
    });
  }

  /**
   * The monitor that sees `connection`'s processes and the connection's sshd pid: its own
   * monitor, or, when its sessions take every slot the server allows (the monitor gave its
   * slot to one of them), another connection's on the same machine (its boot id, or host
   * name, as both monitors read it). `ps` there lists this connection's processes too;
   * snapshotAll also checks that its sshd is among them.
   */
  private async monitorFor(master: HostMaster, connection: MasterConnection): Promise<{ monitor: ProcessMonitor; sshdPid: number; borrowed: boolean }> {
    const t = this.tracker(connection);
    try {
      const own = await this.monitor(connection);
      t.sshdPid = own.sshdPid;
      t.machine = own.machine;
      t.ownMonitorPid = own.monitorPid;
      return { monitor: own, sshdPid: own.sshdPid, borrowed: false };
    } catch (err) {
      if (!(err instanceof HitchError && err.code === 'max-sessions') || t.sshdPid === null || t.machine === null) throw err;
      for (const other of master.readyConnections()) {
        if (other === connection) continue;
        const monitor = await this.monitor(other).catch(() => null);
        // Another machine behind the same name sees other processes under the same pids.
        if (monitor?.machine === t.machine) return { monitor, sshdPid: t.sshdPid, borrowed: true };
      }
      throw err;
    }
  }

  /** A new session: its root pid is learned with the next snapshot, taken right away. */
  sessionOpened(master: HostMaster, session: Session): void {
    this.tracker(session.connection).pending.push(session);
    // Sessions opened while a snapshot of this master runs share the one that follows it.
    const queued = this.followUps.get(master.id);
    if (queued) return void (queued.again = true);
    const state = { again: false };
    this.followUps.set(master.id, state);
    const run = (): void => {
      this.refresh(master)
        .catch((err: Error) => this.deps.log.warn('process snapshot failed', { master: master.id, error: err.message }))
        .finally(() => {
          if (state.again) {
            state.again = false;
            run();
          } else this.followUps.delete(master.id);
        });
    };
    run();
  }

  /** Snapshots taken at once, engine-wide: `ps` costs the servers CPU, and many masters may share one. */
  private snapshotsRunning = 0;
  private readonly snapshotQueue: (() => void)[] = [];
  /** Per master: a session-triggered snapshot is running; `again`: take one more after it. */
  private readonly followUps = new Map<string, { again: boolean }>();

  private async slot<T>(work: () => Promise<T>): Promise<T> {
    if (this.snapshotsRunning >= MAX_CONCURRENT_SNAPSHOTS) await new Promise<void>((r) => this.snapshotQueue.push(r));
    this.snapshotsRunning++;
    try {
      return await work();
    } finally {
      this.snapshotsRunning--;
      this.snapshotQueue.shift()?.();
    }
  }

  /**
   * A durable shell whose pane process is known from tmux: it is the session's root, and its
   * tmux client (a child of sshd) belongs to no session. Takes a snapshot to show it.
   */
  rootKnown(master: HostMaster, session: DurableShell): void {
    const t = this.tracker(session.connection);
    if (session.rootPid !== null) t.roots.set(session.id, session.rootPid);
    if (session.carrierPid !== null) t.carriers.add(session.carrierPid);
    this.deps.emitSession(session);
    this.refresh(master).catch((err: Error) => this.deps.log.warn('process snapshot failed', { master: master.id, error: err.message }));
  }

  /**
   * A process of Hitch's own on the connection (its SFTP server): a child of sshd that is no
   * session's and is not shown. Taken for a session's root meanwhile, it is given back.
   */
  internalProcess(master: HostMaster, connection: MasterConnection, pid: number): void {
    const t = this.tracker(connection);
    t.carriers.add(pid);
    for (const [sessionId, root] of t.roots) {
      if (root !== pid) continue;
      t.roots.delete(sessionId);
      const session = this.deps.sessionsOf(master).find((s) => s.id === sessionId);
      if (!session) continue;
      session.rootPid = null;
      t.pending.unshift(session);
      this.refresh(master).catch((err: Error) => this.deps.log.warn('process snapshot failed', { master: master.id, error: err.message }));
    }
  }

  /** Takes a snapshot of every connection of the master; emits the difference. */
  refresh(master: HostMaster): Promise<ProcessView[]> {
    return this.slot(() => this.snapshotAll(master));
  }

  private async snapshotAll(master: HostMaster): Promise<ProcessView[]> {
    const all: ProcessView[] = [];
    // One `ps` per monitor, however many connections it sees for.
    const taken = new Map<ProcessMonitor, ReturnType<ProcessMonitor['snapshot']>>();
    for (const connection of master.readyConnections()) {
      const t = this.tracker(connection);
      let snapshot: Awaited<ReturnType<ProcessMonitor['snapshot']>>;
      let seen: Awaited<ReturnType<ProcessTrees['monitorFor']>>;
      try {
        seen = await this.monitorFor(master, connection);
        if (!taken.has(seen.monitor)) taken.set(seen.monitor, seen.monitor.snapshot());
        snapshot = await taken.get(seen.monitor)!;
        if (seen.borrowed && !snapshot.rows.some((r) => r.pid === seen.sshdPid && /sshd/.test(r.command))) {
          throw new HitchError('channel', 'Its sshd process is not among the processes another connection sees (another machine behind the same name?).');
        }
        if (t.unseen !== null) this.deps.log.info('process trees seen again on a connection', { master: master.id, borrowed: seen.borrowed });
        t.unseen = null;
      } catch (err) {
        // E.g. its sessions take every MaxSessions slot and no other connection has a monitor:
        // the other connections still show. Logged when it starts, not at every snapshot.
        if (t.unseen === null) this.deps.log.warn('no process snapshot for a connection', { master: master.id, error: (err as Error).message });
        t.unseen = (err as Error).message;
        continue;
      }
      const { at } = snapshot;
      const rows = t.carriers.size === 0 ? snapshot.rows : snapshot.rows.filter((r) => !t.carriers.has(r.pid));
      // New children of sshd belong to the sessions waiting for a root, in opening order.
      t.pending = t.pending.filter((s) => s.state === 'open');
      // Seen through another connection: its own monitor's shell, if still there, stays hidden.
      const monitorPid = seen.borrowed ? (t.ownMonitorPid ?? -1) : seen.monitor.monitorPid;
      const fresh = rootCandidates(rows, seen.sshdPid, monitorPid, new Set(t.roots.values()));
      while (t.pending.length > 0 && fresh.length > 0) {
        const session = t.pending.shift()!;
        session.rootPid = fresh.shift()!.pid;
        t.roots.set(session.id, session.rootPid);
        this.deps.emitSession(session);
      }
      const tree = buildTree({ rows, sshdPid: seen.sshdPid, monitorPid, roots: t.roots, known: t.known, now: at });
      remember(t.known, tree);
      // A process whose session has ended was left behind by it, whoever its parent is now
      // (sshd keeps the children of a closed channel until they exit).
      const open = new Set(this.deps.sessionsOf(master).filter((s) => s.state === 'open').map((s) => s.id));
      for (const p of tree) if (p.sessionId !== null && !open.has(p.sessionId)) p.detached = true;
      for (const [sessionId, pid] of t.roots) if (!t.known.has(pid)) t.roots.delete(sessionId);
      all.push(...tree);
    }
    this.noteHidden(master);
    const before = this.sent.get(master.id) ?? new Map<number, ProcessView>();
    const { upserted, removed } = diffTrees(before, all);
    this.sent.set(master.id, new Map(all.map((p) => [p.pid, p])));
    this.sentAt.set(master.id, Date.now());
    if (upserted.length > 0 || removed.length > 0) this.deps.emitChanged(master.id, upserted, removed);
    return all;
  }

  /** Tells the master (and so the UI) which open sessions' processes no monitor sees, and why. */
  private noteHidden(master: HostMaster): void {
    let count = 0;
    let why: string | null = null;
    for (const session of this.deps.sessionsOf(master)) {
      const unseen = session.state === 'open' ? (this.trackers.get(session.connection)?.unseen ?? null) : null;
      if (unseen === null) continue;
      count++;
      why ??= unseen;
    }
    master.setProcessesHidden(why === null ? null : `Processes of ${count} session${count === 1 ? '' : 's'} are not shown: ${why}`);
  }

  /** Keeps refreshing every `intervalMs` until the lease runs out (renewed by calling again). */
  watch(master: HostMaster, intervalMs: number): void {
    const until = Date.now() + intervalMs * WATCH_LEASE_FACTOR + 5000;
    const existing = this.watches.get(master.id);
    if (existing) {
      existing.until = until;
      existing.intervalMs = intervalMs;
      return;
    }
    const watch: Watch = { timer: null, intervalMs, until };
    this.watches.set(master.id, watch);
    const tick = (): void => {
      if (Date.now() > watch.until || master.state !== 'ready') {
        this.watches.delete(master.id);
        return;
      }
      this.refresh(master)
        .catch((err: Error) => this.deps.log.warn('process snapshot failed', { master: master.id, error: err.message }))
        .finally(() => {
          if (this.watches.get(master.id) === watch) watch.timer = setTimeout(tick, watch.intervalMs);
        });
    };
    tick();
  }

  /** Which pids a signal reaches: one process, it and its descendants, or a whole session. */
  private targets(tree: ProcessView[], pid: number, scope: SignalScope): ProcessView[] {
    const target = tree.find((p) => p.pid === pid);
    if (!target) throw new HitchError('bad-request', `Process ${pid} is not in this master's process tree; nothing was sent.`);
    if (scope === 'process') return [target];
    if (scope === 'session') {
      if (!target.sessionId) throw new HitchError('bad-request', `Process ${pid} belongs to no session of this master.`);
      return tree.filter((p) => p.sessionId === target.sessionId && !p.detached);
    }
    const below = new Set(descendants(tree, pid));
    // Children first, so a parent cannot respawn them on the way out.
    return [...tree.filter((p) => below.has(p.pid)).reverse(), target];
  }

  /** Runs a signal operation, keeping the master's monitors open until it has its answer. */
  private async holding<T>(master: HostMaster, work: () => Promise<T>): Promise<T> {
    this.signalling.set(master.id, (this.signalling.get(master.id) ?? 0) + 1);
    try {
      return await work();
    } finally {
      const left = (this.signalling.get(master.id) ?? 1) - 1;
      if (left > 0) this.signalling.set(master.id, left);
      else {
        this.signalling.delete(master.id);
        this.release(master);
      }
    }
  }

  signal(master: HostMaster, pid: number, signal: SignalName, scope: SignalScope): Promise<SignalOutcome[]> {
    return this.holding(master, () => this.signalNow(master, pid, signal, scope));
  }

  private async signalNow(master: HostMaster, pid: number, signal: SignalName, scope: SignalScope): Promise<SignalOutcome[]> {
    const targets = this.targets(await this.recentTree(master), pid, scope);
    // A signal that usually ends a process is given a moment to, so the answer says "gone".
    const settleMs = (ENDING_SIGNALS as readonly string[]).includes(signal) ? SIGNAL_SETTLE_MS : 0;
    return this.outcomes(master, targets, scope, await this.send(master, targets, signal, scope, settleMs, false));
  }

  /** "Stop job": TERM, then KILL after `graceMs` for whatever is still alive; one script on the host. */
  stop(master: HostMaster, pid: number, scope: SignalScope, graceMs: number): Promise<SignalOutcome[]> {
    return this.holding(master, async () => {
      const targets = this.targets(await this.recentTree(master), pid, scope);
      return this.outcomes(master, targets, scope, await this.send(master, targets, 'TERM', scope, graceMs, true));
    });
  }

  /**
   * The master's tree as last seen, if seen in the last FRESH_TREE_MS (the panel is usually
   * watching it): a signal then costs no snapshot of its own. Else a snapshot now.
   */
  private async recentTree(master: HostMaster): Promise<ProcessView[]> {
    const seen = this.sent.get(master.id);
    if (seen && Date.now() - (this.sentAt.get(master.id) ?? 0) <= FRESH_TREE_MS) return [...seen.values()];
    return this.refresh(master);
  }

  /** Each target's outcome; the tree is refreshed after, so the panel shows it too. */
  private outcomes(master: HostMaster, targets: ProcessView[], scope: SignalScope, results: Map<number, SignalOutcome['outcome']>): SignalOutcome[] {
    void this.refresh(master).catch(() => undefined);
    return targets.map((p) => {
      const outcome = results.get(p.pid) ?? 'failed';
      // In a tree or session, a parent often exits on its own once its children are gone.
      if (outcome === 'no-such-process' && scope !== 'process') return { pid: p.pid, outcome: 'gone' };
      return { pid: p.pid, outcome };
    });
  }

  /**
   * Delivers a signal and waits up to `waitMs` on the host for the targets to exit (KILL to
   * the survivors with `escalate`): one script over each connection's monitor; for a whole
   * session also the SSH "signal" channel request, where sshd honours it (not for root before
   * OpenSSH 10).
   */
  private async send(
    master: HostMaster,
    targets: ProcessView[],
    signal: SignalName,
    scope: SignalScope,
    waitMs: number,
    escalate: boolean,
  ): Promise<Map<number, SignalOutcome['outcome']>> {
    const results = new Map<number, SignalOutcome['outcome']>();
    await Promise.all(
      master.readyConnections().map(async (connection) => {
        const t = this.tracker(connection);
        const mine = targets.filter((p) => t.known.has(p.pid)).map((p) => p.pid);
        if (mine.length === 0) return;
        const { monitor } = await this.monitorFor(master, connection);
        if (scope === 'session' && connection.honoursSessionSignals(monitor.uid)) {
          for (const session of this.deps.sessionsOf(master)) {
            if (session.connection === connection && session.rootPid !== null && mine.includes(session.rootPid)) session.signal(signal);
          }
        }
        // The monitor may have given its slot to a session just now: then the one that sees for it.
        const outcomes = await monitor.signalAndWait(mine, signal, waitMs, escalate).catch(async (err: unknown) => {
          if (!(err instanceof HitchError && err.code === 'max-sessions')) throw err;
          return (await this.monitorFor(master, connection)).monitor.signalAndWait(mine, signal, waitMs, escalate);
        });
        for (const [pid, r] of outcomes) results.set(pid, r);
      }),
    );
    return results;
  }

  /** Frees the monitor channels of a master nobody looks at and that has no sessions. */
  release(master: HostMaster): void {
    if (this.signalling.has(master.id) || this.watches.has(master.id) || this.deps.sessionsOf(master).some((s) => s.state === 'open')) return;
    for (const connection of master.readyConnections()) {
      const t = this.trackers.get(connection);
      void t?.monitor?.then((m) => m.close(), () => undefined);
      if (t) t.monitor = null;
    }
  }
}

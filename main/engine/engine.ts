// The engine is the single owner of connection state: the host catalog, one master
// connection per host and the sessions on them. Transports call its methods and forward
// its events; nothing here knows about Electron, HTTP or the UI.
import type { CatalogView, HitchEvent, HostView, MasterView, SessionView, Snapshot } from '../../preload/api';
import { HitchError } from './errors';
import type { Logger } from './log';
import { MasterConnection } from './master';
import { ShellSession } from './session';
import { loadCatalog, type Catalog, type CatalogEntry } from './ssh-config';

export interface EngineOptions {
  /** The OpenSSH config the host list comes from. */
  sshConfigPath: string;
  /** The OpenSSH client used for `ssh -G`. */
  sshBinary: string;
  /** Where Hitch keeps its own files. */
  dataDir: string;
  /** Hitch's own known_hosts file, consulted after the ones the ssh config names. */
  knownHostsPath: string;
  /** SSH_AUTH_SOCK of the environment Hitch was started from. */
  authSock: string | undefined;
  log: Logger;
}

function hostView(entry: CatalogEntry): HostView {
  const r = entry.resolved;
  return {
    id: entry.alias,
    hostname: r?.hostname ?? entry.alias,
    user: r?.user ?? '',
    port: r?.port ?? 22,
    source: 'ssh-config',
    identityFiles: r?.identityFiles ?? [],
    proxyJump: r?.proxyJump ?? null,
    error: entry.error,
  };
}

export class Engine {
  private catalog: Catalog | null = null;
  private catalogLoading: Promise<Catalog> | null = null;
  private readonly masters = new Map<string, MasterConnection>();
  private readonly sessions = new Map<string, ShellSession>();
  private readonly listeners = new Set<(event: HitchEvent) => void>();
  /** Sessions the user closed: removed as soon as their channel has closed. */
  private readonly dismissed = new Set<string>();
  private nextSessionNumber = 1;

  constructor(readonly options: EngineOptions) {}

  /** Subscribes to engine events; returns the unsubscribe function. */
  onEvent(listener: (event: HitchEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: HitchEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.options.log.error('event listener failed', { event: event.event, error: String(err) });
      }
    }
  }

  // -- hosts -----------------------------------------------------------------------------

  private async loadedCatalog(): Promise<Catalog> {
    if (this.catalog) return this.catalog;
    this.catalogLoading ??= loadCatalog({ configPath: this.options.sshConfigPath, sshBinary: this.options.sshBinary })
      .then((catalog) => {
        this.catalog = catalog;
        for (const w of catalog.warnings) this.options.log.warn('ssh config', { warning: w });
        return catalog;
      })
      .finally(() => (this.catalogLoading = null));
    return this.catalogLoading;
  }

  private catalogView(catalog: Catalog): CatalogView {
    return { hosts: catalog.entries.map(hostView), configPath: catalog.configPath, warnings: catalog.warnings };
  }

  async reloadCatalog(): Promise<CatalogView> {
    this.catalog = null;
    const view = this.catalogView(await this.loadedCatalog());
    this.emit({ event: 'catalog.changed', payload: view });
    return view;
  }

  async snapshot(): Promise<Snapshot> {
    return {
      catalog: this.catalogView(await this.loadedCatalog()),
      masters: [...this.masters.values()].map((m) => m.view()),
      sessions: [...this.sessions.values()].map((s) => s.view()),
    };
  }

  // -- masters ---------------------------------------------------------------------------

  private async master(hostId: string): Promise<MasterConnection> {
    const existing = this.masters.get(hostId);
    if (existing) return existing;
    const entry = (await this.loadedCatalog()).entries.find((e) => e.alias === hostId);
    if (!entry) throw new HitchError('unknown-host', `No host "${hostId}" in ${this.options.sshConfigPath}.`);
    if (!entry.resolved) throw new HitchError('config', entry.error ?? `Host "${hostId}" could not be resolved.`);
    const master = new MasterConnection({
      host: entry.resolved,
      hitchKnownHosts: this.options.knownHostsPath,
      log: this.options.log,
      authSock: this.options.authSock,
    });
    master.on('changed', () => this.emit({ event: 'master.changed', payload: master.view() }));
    this.masters.set(hostId, master);
    return master;
  }

  async connect(hostId: string): Promise<MasterView> {
    const master = await this.master(hostId);
    await master.connect();
    return master.view();
  }

  disconnect(hostId: string): void {
    const master = this.masters.get(hostId);
    if (!master) throw new HitchError('not-connected', `${hostId} has no master connection.`);
    master.close();
  }

  // -- sessions --------------------------------------------------------------------------

  /** Opens a shell on the host's master, connecting the master first if needed. */
  async openSession(hostId: string, cols: number, rows: number): Promise<SessionView> {
    const master = await this.master(hostId);
    await master.connect();
    const channel = await master.openShell({ cols, rows });
    const session = new ShellSession(`s${this.nextSessionNumber++}`, hostId, channel);
    this.sessions.set(session.id, session);
    master.sessions++;
    master.emit('changed');
    session.on('data', (offset, data) =>
      this.emit({ event: 'session.data', payload: { sessionId: session.id, offset, data } }),
    );
    session.on('changed', () => {
      if (session.state === 'closed') {
        master.sessions--;
        master.emit('changed');
        this.options.log.info('session closed', { host: hostId, session: session.id, exitCode: session.exitCode });
      }
      this.emit({ event: 'session.changed', payload: session.view() });
      if (session.state === 'closed' && this.dismissed.has(session.id)) this.removeSession(session.id);
    });
    this.emit({ event: 'session.changed', payload: session.view() });
    this.options.log.info('session opened', { host: hostId, session: session.id });
    return session.view();
  }

  private session(sessionId: string): ShellSession {
    const session = this.sessions.get(sessionId);
    if (!session) throw new HitchError('unknown-session', `No session ${sessionId}.`);
    return session;
  }

  writeSession(sessionId: string, data: string): void {
    this.session(sessionId).write(data);
  }

  resizeSession(sessionId: string, cols: number, rows: number): void {
    this.session(sessionId).resize(cols, rows);
  }

  /** Closes a session (hanging up its remote processes) and removes it once closed. */
  closeSession(sessionId: string): void {
    const session = this.session(sessionId);
    if (session.state === 'closed') {
      this.removeSession(sessionId);
      return;
    }
    this.dismissed.add(sessionId);
    session.close();
  }

  private removeSession(sessionId: string): void {
    this.dismissed.delete(sessionId);
    if (this.sessions.delete(sessionId)) this.emit({ event: 'session.removed', payload: { sessionId } });
  }

  replaySession(sessionId: string): { data: string; end: number } {
    return this.session(sessionId).replay();
  }

  /** Closes every master; used when the app quits. */
  shutdown(): void {
    for (const master of this.masters.values()) master.close();
  }
}

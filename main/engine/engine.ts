// The engine is the single owner of connection state: the host catalog, one master per
// destination and the sessions on them, and the prompts waiting for a person. Transports
// call its methods and forward its events; nothing here knows about Electron, HTTP or the UI.
import type {
  BenchReport,
  CatalogView,
  ForwardKind,
  ForwardView,
  DirectoryView,
  HitchEvent,
  HostView,
  MasterView,
  ProcessTreeView,
  SessionView,
  SignalName,
  SignalOutcome,
  SettingsView,
  SignalScope,
  Snapshot,
  SshConfigInclude,
  SshConfigSnippet,
  TransferView,
} from '../../preload/api';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { writeAtomically } from './atomic-file';
import { passphraseAccount, passwordAccount } from './masters/auth';
import { runBench } from './bench/bench';
import { BenchHistory } from './bench/bench-history';
import { ControlSockets, defaultControlSocketDir, type MasterPort } from './control-socket';
import { includeSnippet, snippet, type SnippetHost } from './control-socket/ssh-config';
import { HitchError } from './errors';
import { PortForwards } from './forwards';
import { deletePath, listDirectory, makeDirectory, processCwd, renamePath } from './files/remote-files';
import { SftpSessions } from './files/sftp-sessions';
import { TransferQueue, type IfExists } from './files/transfers';
import { HostMaster } from './masters/host-master';
import { HostStore, savedHostSshArgs } from './config/host-store';
import { hostForLink, hostFromLink, linkTarget, parseSshLink } from './config/links';
import type { SecretStore } from './masters/keychain';
import type { Logger } from './log';
import { DEFAULT_TIMING, type SessionRequest, type Timing } from './masters/master';
import { AttachedCarrierError, DurableShell } from './sessions/durable-shell';
import { Owners } from './sessions/owners';
import { WakeDetector } from './wake';
import { controlCommand, killCommand, LIST_COMMAND, parseLeftRunning } from './sessions/tmux-control';
import { TmuxLane } from './sessions/tmux-lane';
import { expandHome } from './paths';
import { ProcessTrees } from './processes/processes';
import { SettingsStore } from './config/settings';
import { Prompter, type PromptAnswer } from './masters/prompts';
import { isPrivateRun, Session, type SessionInfo } from './sessions/session';
import { loadCatalog, resolveHop, type Catalog, type CatalogEntry, type ResolvedHost } from './config/ssh-config';

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
  /** Where remembered passwords and passphrases live: the OS keychain. */
  secrets: SecretStore;
  log: Logger;
  /** Connect timeout and keepalive; OpenSSH-like defaults. */
  timing?: Partial<Timing>;
  /** How long a master without sessions stays up (ControlPersist); null: until disconnected. */
  idleTimeoutMs?: number | null;
  /** Keep one session channel open ahead of need per connection (one round trip less). On by default. */
  spareChannel?: boolean;
  /** Overrides the durableShells setting (tests that are about ordinary shells). */
  durableShells?: boolean;
  /**
   * Watch each connection's processes (one monitor channel per connection, which takes a
   * MaxSessions slot). On by default.
   */
  processTrees?: boolean;
  /**
   * Where masters' OpenSSH-compatible control sockets live: $XDG_RUNTIME_DIR/hitch, else
   * <dataDir>/sockets, unless set; null serves none.
   */
  controlSocketDir?: string | null;
}

/** ProxyJump chains longer than this are taken for loops. */
const MAX_JUMP_DEPTH = 8;
/** Tries at rejoining a durable shell while its master is up before it counts as lost. */
const REJOIN_TRIES = 6;
/** How long a durable shell's close holds its master's tmux lane at most, waiting for its carrier to go. */
const CARRIER_CLOSE_WAIT_MS = 5_000;

/** How a channel ended: its exit status (null: none) and the tail of its stderr; waits at most 3 s for the close. */
function channelEnd(channel: ClientChannel): Promise<{ status: number | null; stderr: string }> {
  let status: number | null = null;
  let stderr = '';
  channel.once('exit', (code: unknown) => (status = typeof code === 'number' ? code : null));
  channel.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-500)));
  return new Promise((resolve) => {
    const done = (): void => resolve({ status, stderr });
    channel.once('close', done);
    setTimeout(done, 3_000).unref();
  });
}

/** How long a probed master has to answer after a wake before it is taken for dead. */
export const PROBE_DEADLINE_MS = 3_000;
/** Ended sessions kept listed (with how they ended) before the oldest are let go. */
export const MAX_ENDED_SESSIONS = 100;

/** One master per destination: the same user@host:port through the same jumps. */
export function masterIdOf(host: ResolvedHost, jump: string | null = host.proxyJump): string {
  return `${host.user}@${host.hostname}:${host.port}` + (jump ? ` via ${jump}` : '');
}

function hostView(entry: CatalogEntry, saved: HostView['saved']): HostView {
  const r = entry.resolved;
  return {
    id: entry.alias,
    hostname: r?.hostname ?? entry.alias,
    user: r?.user ?? '',
    port: r?.port ?? 22,
    source: entry.source,
    identityFiles: r?.identityFiles ?? [],
    proxyJump: r?.proxyJump ?? null,
    masterId: r ? masterIdOf(r) : null,
    error: entry.error,
    saved,
  };
}

export class Engine {
  private catalog: Catalog | null = null;
  private catalogLoading: Promise<Catalog> | null = null;
  private readonly store: HostStore;
  private storeLoaded: Promise<void> | null = null;
  private storeWarning: string | null = null;
  private readonly masters = new Map<string, HostMaster>();
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Set<(event: HitchEvent) => void>();
  /** Told whenever readyControlPaths() may have changed. */
  private readonly controlPathListeners = new Set<() => void>();
  private readonly prompter: Prompter;
  /** Host keys accepted "once": good for this run only. */
  private readonly acceptedOnce = new Set<string>();
  /** Sessions the user closed: removed as soon as their channel has closed. */
  private readonly dismissed = new Set<string>();
  /** Ended sessions still listed (tabs showing how they ended), oldest first; bounded. */
  private readonly ended = new Set<string>();
  /** The clients holding sessions; what a client leaves behind ends with it. */
  private readonly owners = new Owners((owner) => this.releaseOwner(owner));
  /** Masters whose host has no tmux: their shells are ordinary ones. */
  private readonly withoutTmux = new Set<string>();
  /** Per host account, the order of the tmux work there that could crash tmux (tmux-lane.ts). */
  private readonly tmuxLanes = new Map<string, TmuxLane>();
  /**
   * Names this engine's numbering of the keys it sends durable shells (DurableShell.write):
   * another engine on the same shell (another computer, a restart) numbers its own.
   */
  private readonly keysMark = randomBytes(4).toString('hex');
  /** Masters known to be ready (their durable shells rejoined and listed once per connect). */
  private readonly readyMasters = new Set<string>();
  /** Notices the computer waking (or the process resuming after a stop): masters are probed then. */
  private readonly wake = new WakeDetector((awayMs) => this.afterWake(awayMs));
  /** Masters of hosts kept warm (settings.warmHosts): they do not idle out. */
  private readonly warmMasters = new Set<string>();
  private readonly warmMasterOf = new Map<string, string>();
  /** Durable shells being started or reopened right now, by tmux name: not "left running". */
  private readonly startingNames = new Set<string>();
  /** Durable shells being brought back right now. */
  private readonly rejoining = new Set<string>();
  /** Durable shells closed while nothing carried them, by master: ended on the host once it is back. */
  private readonly killsOwed = new Map<string, Set<string>>();
  private nextSessionNumber = 1;
  private readonly timing: Timing;
  private readonly trees: ProcessTrees;
  private readonly benchHistory: BenchHistory;
  private readonly settings: SettingsStore;
  /** Settings are read once at start; everything that depends on them waits for it. */
  private readonly settingsLoaded: Promise<void>;
  /** Benchmarks under way, by host, so they can be cancelled. */
  private readonly benches = new Map<string, AbortController>();
  private readonly controlSockets: ControlSockets | null;
  /** Every master's port forwards, and the ones saved per host. */
  private readonly forwards: PortForwards;
  /** The saved forwards file is read once at start; masters wait for it (they restore from it). */
  private readonly forwardsLoaded: Promise<void>;
  /** Then the masters of hosts with saved forwards are made, so that those are listed from the start. */
  private readonly forwardsListed: Promise<void>;
  /** One SFTP session per master, for the file browser and transfers. */
  private readonly sftpSessions: SftpSessions;
  private readonly transfers: TransferQueue;

  constructor(readonly options: EngineOptions) {
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.store = new HostStore(`${options.dataDir}/hosts.json`, options.log);
    this.benchHistory = new BenchHistory(`${options.dataDir}/bench-history.json`, options.log);
    this.settings = new SettingsStore(`${options.dataDir}/settings.json`, options.log);
    this.settingsLoaded = this.settings.load().then(
      () => {
        this.applySettings();
        this.warmUp('start');
      },
      (err: Error) => options.log.error('settings could not be read', { error: err.message }),
    );
    const socketDir = options.controlSocketDir === undefined ? defaultControlSocketDir(options.dataDir) : options.controlSocketDir;
    this.controlSockets = socketDir === null ? null : new ControlSockets({ dir: socketDir, log: options.log });
    this.forwards = new PortForwards({ file: `${options.dataDir}/forwards.json`, log: options.log, emit: (event) => this.emit(event) });
    this.forwardsLoaded = this.forwards.load().catch((err: Error) => options.log.error('saved forwards could not be read', { error: err.message }));
    this.forwardsListed = this.forwardsLoaded.then(() => this.listSavedForwards());
    this.prompter = new Prompter(
      (view) => this.emit({ event: 'prompt.opened', payload: view }),
      (promptId) => this.emit({ event: 'prompt.closed', payload: { promptId } }),
    );
    this.trees = new ProcessTrees({
      log: options.log,
      emitChanged: (masterId, upserted, removed) => this.emit({ event: 'processes.changed', payload: { masterId, upserted, removed } }),
      emitSession: (session) => this.emit({ event: 'session.changed', payload: session.view() }),
      sessionsOf: (master) => [...this.sessions.values()].filter((s) => s.info.masterId === master.id),
    });
    this.sftpSessions = new SftpSessions(options.log, (master, connection, pid) => this.trees.internalProcess(master, connection, pid));
    this.transfers = new TransferQueue({
      log: options.log,
      sftp: this.sftpSessions,
      emit: (view) => this.emit({ event: 'transfer.changed', payload: view }),
    });
    this.wake.start();
  }

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

  // -- settings ----------------------------------------------------------------------------

  /** Flags and HITCH_* variables given at start win over the saved settings. */
  private applySettings(): void {
    const s = this.settings.get();
    if (this.options.timing?.keepaliveIntervalMs === undefined) this.timing.keepaliveIntervalMs = s.keepaliveSeconds * 1000;
    if (this.options.timing?.keepaliveCountMax === undefined) this.timing.keepaliveCountMax = s.keepaliveCountMax;
    for (const master of this.masters.values()) master.setSpareChannel(this.spareChannel());
  }

  private idleTimeoutMs(): number | null {
    if (this.options.idleTimeoutMs !== undefined) return this.options.idleTimeoutMs;
    const minutes = this.settings.get().idleTimeoutMinutes;
    return minutes === null ? null : minutes * 60_000;
  }

  private spareChannel(): boolean {
    return this.options.spareChannel ?? this.settings.get().spareChannel;
  }

  async getSettings(): Promise<{ settings: SettingsView; warning: string | null }> {
    await this.settingsLoaded;
    return { settings: this.settings.get(), warning: this.settings.warning };
  }

  async updateSettings(patch: unknown): Promise<SettingsView> {
    await this.settingsLoaded;
    const settings = await this.settings.update(patch);
    this.applySettings();
    if (patch !== null && typeof patch === 'object' && 'warmHosts' in patch) this.warmUp('marked');
    this.emit({ event: 'settings.changed', payload: settings });
    return settings;
  }

  /** The computer woke (or the process resumed after a stop) `awayMs` later than expected. */
  afterWake(awayMs: number): void {
    this.options.log.info('woke after a pause: probing every master', { awaySeconds: Math.round(awayMs / 1000) });
    void this.probeMasters();
    this.warmUp('wake');
  }

  /** Hosts kept warm: the person's favourites, and hosts with saved forwards (they come back by themselves). */
  private async warmHostIds(): Promise<string[]> {
    return [...new Set([...this.settings.get().warmHosts, ...(await this.savedForwardHosts())])];
  }

  /**
   * Connects the masters of hosts kept warm, in the background, where logging in needs nobody
   * (a key or agent, a host key already known): the first shell then costs one round trip, not
   * a handshake. Never prompts; a host that needs a person is left for when the person asks. A
   * master the person disconnected stays so until they connect it again.
   */
  private warmUp(reason: 'start' | 'wake' | 'marked'): void {
    void this.warmHostIds().then((hosts) => this.warmAll(new Set(hosts), reason));
  }

  private warmAll(wanted: Set<string>, reason: 'start' | 'wake' | 'marked'): void {
    for (const hostId of wanted) {
      void this.warm(hostId, reason).catch((err: Error) =>
        this.options.log.info('warm host not connected', { host: hostId, reason, error: err.message }),
      );
    }
    // Masters no longer kept warm may idle out again.
    for (const id of [...this.warmMasters]) if (![...wanted].some((h) => this.warmMasterOf.get(h) === id)) this.warmMasters.delete(id);
  }

  private async warm(hostId: string, reason: string): Promise<void> {
    const master = await this.masterFor(await this.resolved(hostId));
    this.warmMasterOf.set(hostId, master.id);
    this.warmMasters.add(master.id);
    const state = master.view().state;
    if (state !== 'closed' && state !== 'failed') return; // up, or on its way
    if (master.closedOnPurpose && reason !== 'marked') return;
    await master.connect(false);
    await this.controlSockets?.settled(master);
    this.options.log.info('warm host connected', { host: hostId, reason });
  }

  /** The launcher's "recent" group: hosts with a session opened lately, newest first. */
  private noteRecent(hostId: string): void {
    const current = this.settings.get().recentHosts;
    if (current[0] === hostId) return; // the usual case, many sessions on one host: nothing to save
    const recent = [hostId, ...current.filter((h) => h !== hostId)].slice(0, 8);
    this.updateSettings({ recentHosts: recent }).catch((err: Error) => this.options.log.warn('recent hosts not saved', { error: err.message }));
  }

  // -- hosts -----------------------------------------------------------------------------

  private async loadedCatalog(): Promise<Catalog> {
    if (this.catalog) return this.catalog;
    this.catalogLoading ??= (async () => {
      this.storeLoaded ??= this.store.load().then(({ warning }) => {
        this.storeWarning = warning;
        if (warning) this.options.log.warn('saved hosts', { warning });
      });
      await this.storeLoaded;
      const saved = this.store.list().map((h) => ({ alias: h.id, sshArgs: savedHostSshArgs(h) }));
      const catalog = await loadCatalog({ configPath: this.options.sshConfigPath, sshBinary: this.options.sshBinary }, saved);
      if (this.storeWarning) catalog.warnings.unshift(this.storeWarning);
      for (const w of catalog.warnings) this.options.log.warn('ssh config', { warning: w });
      this.catalog = catalog;
      this.controlPathsChanged();
      return catalog;
    })().finally(() => (this.catalogLoading = null));
    return this.catalogLoading;
  }

  private catalogView(catalog: Catalog): CatalogView {
    const saved = (alias: string): HostView['saved'] => {
      const h = this.store.get(alias);
      return h ? { hostname: h.hostname, user: h.user ?? null, port: h.port ?? null, identityFile: h.identityFile ?? null, proxyJump: h.proxyJump ?? null } : null;
    };
    return {
      hosts: catalog.entries.map((e) => hostView(e, e.source === 'app' ? saved(e.alias) : null)),
      configPath: catalog.configPath,
      warnings: catalog.warnings,
    };
  }

  async reloadCatalog(): Promise<CatalogView> {
    this.catalog = null;
    this.controlPathsChanged(); // no alias is linked to a master until the new catalog says which
    const view = this.catalogView(await this.loadedCatalog());
    this.emit({ event: 'catalog.changed', payload: view });
    await this.refreshSnippet();
    return view;
  }

  async addHost(input: unknown): Promise<CatalogView> {
    await this.loadedCatalog();
    await this.store.add(input);
    return this.reloadCatalog();
  }

  async updateHost(hostId: string, patch: unknown): Promise<CatalogView> {
    await this.loadedCatalog();
    await this.store.update(hostId, patch);
    return this.reloadCatalog();
  }

  async removeHost(hostId: string): Promise<CatalogView> {
    await this.loadedCatalog();
    await this.store.remove(hostId);
    return this.reloadCatalog();
  }

  async snapshot(): Promise<Snapshot> {
    await this.forwardsListed;
    return {
      catalog: this.catalogView(await this.loadedCatalog()),
      masters: [...this.masters.values()].map((m) => m.view()),
      sessions: [...this.sessions.values()].map((s) => s.view()),
      prompts: this.prompter.list(),
      forwards: this.forwards.list(),
      transfers: this.transfers.list(),
    };
  }

  private async resolved(hostId: string): Promise<ResolvedHost> {
    const entry = (await this.loadedCatalog()).entries.find((e) => e.alias === hostId);
    if (!entry) throw new HitchError('unknown-host', `No host "${hostId}" in ${this.options.sshConfigPath} or in Hitch.`);
    if (!entry.resolved) throw new HitchError('config', entry.error ?? `Host "${hostId}" could not be resolved.`);
    return entry.resolved;
  }

  /**
   * The control socket of each host whose master is ready and serving one, by alias: what
   * `master.connect` for that alias would reach now (the catalog as loaded, as there). For
   * publishing to the `hitch` command (transport/master-links.ts). Empty before the catalog
   * loads and while it reloads.
   */
  readyControlPaths(): Map<string, string> {
    const paths = new Map<string, string>();
    for (const entry of this.catalog?.entries ?? []) {
      if (!entry.resolved) continue;
      const master = this.masters.get(masterIdOf(entry.resolved));
      if (master?.state === 'ready' && master.controlPath !== null) paths.set(entry.alias, master.controlPath);
    }
    return paths;
  }

  /** Calls `listener` whenever readyControlPaths() may have changed; returns the unsubscribe function. */
  onControlPathsChanged(listener: () => void): () => void {
    this.controlPathListeners.add(listener);
    return () => this.controlPathListeners.delete(listener);
  }

  private controlPathsChanged(): void {
    for (const listener of this.controlPathListeners) listener();
  }

  // -- masters ---------------------------------------------------------------------------

  /**
   * The master for a destination, created on first use. With ProxyJump `a,b` the host is
   * reached through b, which is reached through a (with a's own settings), as `ssh -J a,b`;
   * each hop is a master of its own, shared by every host behind it.
   */
  private async masterFor(host: ResolvedHost, jump: string | null = host.proxyJump, depth = 0): Promise<HostMaster> {
    const id = masterIdOf(host, jump);
    await this.settingsLoaded;
    await this.forwardsLoaded;
    const existing = this.masters.get(id);
    if (existing) {
      existing.adopt(host);
      this.forwards.attach(existing, host.alias);
      return existing;
    }
    if (depth > MAX_JUMP_DEPTH) throw new HitchError('config', `ProxyJump chain for ${host.alias} is longer than ${MAX_JUMP_DEPTH} hops or loops.`);
    let via: HostMaster | null = null;
    if (jump) {
      const hops = jump.split(',').map((h) => h.trim());
      const last = hops.pop()!;
      const hop = await resolveHop(await this.loadedCatalog(), { configPath: this.options.sshConfigPath, sshBinary: this.options.sshBinary }, last);
      via = await this.masterFor(hop, hops.length > 0 ? hops.join(',') : hop.proxyJump, depth + 1);
    }
    const master = new HostMaster({
      id,
      host,
      via,
      hitchKnownHosts: this.options.knownHostsPath,
      acceptedOnce: this.acceptedOnce,
      timing: this.timing,
      idleTimeoutMs: () => (this.warmMasters.has(id) ? null : this.idleTimeoutMs()),
      spareChannel: this.spareChannel(),
      authSock: this.options.authSock,
      secrets: this.options.secrets,
      prompter: this.prompter,
      log: this.options.log,
    });
    master.on('changed', () => {
      this.emit({ event: 'master.changed', payload: master.view() });
      this.controlPathsChanged();
      if (master.view().state === 'ready' && !this.readyMasters.has(master.id)) {
        this.readyMasters.add(master.id);
        // Shells closed while disconnected end on the host before any is rejoined (the master's
        // tmux lane keeps the kills and the rejoins' starts apart: tmux-lane.ts). The shells
        // left on the host are listed once the ones here are back.
        void this.payKillsOwed(master)
          .then(() => this.rejoinDurable(master))
          .then(() => this.listLeftRunning(master))
          .catch((err: Error) => this.options.log.error('durable shells not brought back', { master: master.id, error: err.message }));
      } else if (master.view().state !== 'ready') this.readyMasters.delete(master.id);
    });
    master.on('dropped', (connection) => {
      for (const session of this.sessions.values()) if (session.connection === connection) session.markDropped();
    });
    this.masters.set(id, master);
    const forwards = this.forwards.attach(master, host.alias);
    this.controlSockets?.manage(master, { hostname: host.hostname, port: host.port, user: host.user, jump }, this.controlPort(master, host.alias), forwards);
    return master;
  }

  /** What a master's control socket may do with it: stock clients' sessions show here as external. */
  private controlPort(master: HostMaster, hostId: string): MasterPort {
    return {
      id: master.id,
      log: this.options.log,
      openSession: async (spec) => {
        const { channel, connection } = await master.openSession({ kind: 'custom', setup: spec.setup });
        const info = this.sessionInfo(master, { hostId, kind: spec.kind, command: spec.command, external: true, ...(spec.hitchRun ? { run: true } : {}) });
        const session = this.track(master, new Session(info, channel, connection));
        return { channel, session };
      },
      forwardOut: (host, port) => master.forwardOut(host, port),
      primary: () => master.readyConnections()[0] ?? null,
      terminate: () => master.disconnect(),
      retain: () => master.retain(),
      release: () => master.release(),
    };
  }

  async connect(hostId: string): Promise<MasterView> {
    const master = await this.masterFor(await this.resolved(hostId));
    await master.connect();
    await this.controlSockets?.settled(master); // the view then names its control socket
    return master.view();
  }

  // -- port forwards ----------------------------------------------------------------------

  /**
   * Saved forwards are listed (as waiting) from the start: the masters of their hosts are
   * made, not connected; the first connect sets them up.
   */
  private async listSavedForwards(): Promise<void> {
    for (const hostId of this.forwards.savedForwardHosts()) {
      try {
        await this.masterFor(await this.resolved(hostId));
      } catch (err) {
        this.options.log.warn('saved forwards of a host that cannot be resolved', { host: hostId, error: (err as Error).message });
      }
    }
  }

  /**
   * Hosts having saved forwards: worth connecting at start when logging in needs nobody.
   * Resolves once the saved forwards file has been read.
   */
  async savedForwardHosts(): Promise<string[]> {
    await this.forwardsLoaded;
    return this.forwards.savedForwardHosts();
  }

  /** Every forward, or those on the host's master. */
  async listForwards(hostId?: string): Promise<ForwardView[]> {
    await this.forwardsListed;
    if (hostId === undefined) return this.forwards.list();
    return this.forwards.list(masterIdOf(await this.resolved(hostId)));
  }

  /** Sets up a forward on the host's master, connecting it first (asking a person if logging in needs one). */
  async openForward(request: {
    hostId: string;
    kind: ForwardKind;
    bindAddress?: string | undefined;
    listenPort: number;
    connectHost?: string | undefined;
    connectPort?: number | undefined;
    save?: boolean | undefined;
  }): Promise<ForwardView> {
    const master = await this.masterFor(await this.resolved(request.hostId));
    await master.connect();
    const dynamic = request.kind === 'dynamic';
    return this.forwards.open(
      master,
      request.hostId,
      {
        kind: request.kind,
        bindAddress: request.bindAddress ?? 'localhost',
        listenPort: request.listenPort,
        connectHost: dynamic ? null : (request.connectHost ?? null),
        connectPort: dynamic ? null : (request.connectPort ?? null),
      },
      request.save ?? false,
    );
  }

  cancelForward(forwardId: string): Promise<void> {
    return this.forwards.cancel(forwardId);
  }

  saveForward(forwardId: string, saved: boolean): Promise<ForwardView> {
    return this.forwards.save(forwardId, saved);
  }

  async disconnect(hostId: string): Promise<void> {
    const host = await this.resolved(hostId);
    const master = this.masters.get(masterIdOf(host));
    if (!master) throw new HitchError('not-connected', `${hostId} has no master connection.`);
    master.disconnect();
  }

  // -- sessions --------------------------------------------------------------------------

  /**
   * Opens a shell or runs a command on the host's master, connecting it first if needed.
   * `owner`: the client it belongs to (it ends when that client goes); `raw`: see SessionInfo.
   */
  async openSession(
    hostId: string,
    request: Exclude<SessionRequest, { kind: 'custom' }>,
    options: { raw?: boolean; owner?: string | null } = {},
  ): Promise<SessionView> {
    const master = await this.masterFor(await this.resolved(hostId));
    const owner = options.owner ?? null;
    const info = {
      hostId,
      kind: request.kind,
      command: request.kind === 'exec' ? request.command : null,
      raw: request.kind === 'exec' && options.raw === true,
      owner,
      tty: request.kind === 'shell' || request.pty !== null,
    };
    let session: Session;
    if (request.kind === 'shell') {
      const durable = await this.openDurable(master, hostId, { cols: request.cols, rows: request.rows }, info);
      if (typeof durable === 'string') {
        const { channel, connection } = await master.openSession(request);
        session = this.track(master, new Session(this.sessionInfo(master, { ...info, notDurable: durable }), channel, connection));
      } else session = this.track(master, durable);
    } else {
      const { channel, connection } = await master.openSession(request);
      session = this.track(master, new Session(this.sessionInfo(master, info), channel, connection));
    }
    this.noteRecent(hostId);
    // Its client went while the channel was opening: nobody is left to use it.
    if (owner !== null && !this.owners.holds(owner)) this.closeSession(session.id);
    return session.view();
  }

  /**
   * An ssh:// link from outside Hitch. A host the catalog knows opens a session at once (the
   * same as choosing it in Hitch); any other is shown to the person first, exactly where the
   * link would connect, and is added only if they say so. Null when they decline.
   */
  async openLink(url: string, size: { cols: number; rows: number }, owner: string | null = null): Promise<SessionView | null> {
    const link = parseSshLink(url);
    if (!link) throw new HitchError('bad-request', 'Not an ssh:// link Hitch can open: it must be ssh://[user@]host[:port] with no password, path or query.');
    const known = hostForLink(link, this.catalogView(await this.loadedCatalog()).hosts);
    if (known) return this.openSession(known.id, { kind: 'shell', ...size }, { owner });
    const add = hostFromLink(link);
    this.options.log.info('ssh:// link to a host not in Hitch: asking the person', { target: linkTarget(link) });
    const answer = await this.prompter.ask({
      masterId: '',
      kind: 'open-link',
      title: `Open ${linkTarget(link)}?`,
      message:
        `A link from outside Hitch (a web page or another program) asks to connect to ${linkTarget(link)}, a host Hitch does not know. ` +
        `Continuing adds it to your hosts as "${add.id}" and logs in, offering your keys to that server. Continue only if you expected this link.`,
      fields: [],
      canRemember: false,
    });
    if (!answer || answer.choice !== 'always') return null;
    await this.addHost(add);
    return this.openSession(add.id, { kind: 'shell', ...size }, { owner });
  }

  /** A new session's id and master, with what it is. */
  private sessionInfo(master: HostMaster, info: Omit<SessionInfo, 'id' | 'masterId'>): SessionInfo {
    return { id: `s${this.nextSessionNumber++}`, masterId: master.id, ...info };
  }

  /**
   * A durable shell in tmux on the host, or why there is none (then the caller opens an
   * ordinary shell): durable shells turned off, or no tmux on the host (remembered per master).
   */
  private async openDurable(master: HostMaster, hostId: string, size: { cols: number; rows: number }, info: Omit<SessionInfo, 'id' | 'masterId'>): Promise<DurableShell | string> {
    const settings = this.settings.get();
    if (!(this.options.durableShells ?? settings.durableShells)) return 'durable shells are turned off in the settings';
    if (settings.notDurableHosts.includes(hostId)) return `durable shells are turned off for ${hostId}`;
    if (this.withoutTmux.has(master.id)) return `install tmux on ${hostId} to keep shells across disconnections`;
    // A new session is one of the things tmux must not do beside a control client starting
    // (tmux-lane.ts); two tmux servers starting at once on one socket both fail too ("server
    // exited unexpectedly"). So shells start alone on their master's lane, and a failed start
    // is tried again.
    let why = '';
    for (let attempt = 1; attempt <= 3; attempt++) {
      const name = `hitch-${randomBytes(8).toString('hex')}`;
      this.startingNames.add(name);
      try {
        const outcome = await this.lane(master.id).alone(async (): Promise<DurableShell | string | Error> => {
          const start = controlCommand(name, size, 'new');
          const { channel, connection } = await master.openSession({ kind: 'exec', command: start.command, pty: null, pipelined: true });
          const shell = new DurableShell(this.sessionInfo(master, info), name, this.keysMark, connection, size);
          const ended = channelEnd(channel);
          try {
            await shell.carry(channel, connection, start);
            return shell;
          } catch (err) {
            if (err instanceof AttachedCarrierError) channel.close(); // alone on the lane: safe
            const { status, stderr } = await ended;
            if (status === 127) {
              this.withoutTmux.add(master.id);
              this.options.log.info('no tmux on the host: shells there are ordinary ones', { host: hostId });
              return `install tmux on ${hostId} to keep shells across disconnections`;
            }
            // A shell tmux started before a later step failed is not left behind on the host.
            await this.execQuietly(master, killCommand(name));
            const failure = new Error(stderr.trim() || (err as Error).message);
            this.options.log.warn('durable shell not started', { host: hostId, attempt, status, error: failure.message });
            return failure;
          }
        });
        if (!(outcome instanceof Error)) return outcome;
        why = outcome.message;
      } finally {
        this.startingNames.delete(name);
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
    return `tmux on ${hostId} did not start a shell (${why})`;
  }

  /**
   * The tmux lane (tmux-lane.ts) of a master's host account: one per `user@hostname:port`,
   * whatever the jumps, as Hitch's tmux server is one per account there. (Another name for the
   * same machine gets a lane of its own; two ports are taken for two machines, as VMs behind
   * port forwards are.)
   */
  private lane(masterId: string): TmuxLane {
    const account = masterId.replace(/ via .*$/, '');
    let lane = this.tmuxLanes.get(account);
    if (!lane) this.tmuxLanes.set(account, (lane = new TmuxLane()));
    return lane;
  }

  /**
   * Closes a carrier tmux attached but Hitch will not use, once nothing else runs on the lane:
   * its client detaching notifies every control client (tmux-lane.ts). Never awaited from
   * work on the lane, which this waits for.
   */
  private detachAlone(masterId: string, channel: ClientChannel, ended: Promise<unknown>): void {
    this.lane(masterId)
      .alone(async () => {
        channel.close();
        await ended; // set up before the carrier started: a channel closed already has its end
      })
      .catch((err: Error) => this.options.log.warn('dropped tmux carrier not closed', { error: err.message }));
  }

  /** Runs a fixed command on the host, ignoring its output; resolves once it has ended (or could not run). */
  private async execQuietly(master: HostMaster, command: string): Promise<void> {
    try {
      const { channel } = await master.openSession({ kind: 'exec', command, pty: null });
      channel.on('data', () => undefined);
      channel.stderr.on('data', () => undefined);
      await new Promise<void>((resolve) => channel.once('close', () => resolve()));
    } catch {
      // the host is gone again: nothing to clean up there now
    }
  }

  /**
   * Brings back the master's durable shells that lost their connection. A try that fails
   * for want of the host is retried with backoff; one tmux refuses (the session is gone from
   * the host) marks the shell lost, as do REJOIN_TRIES failures in a row.
   */
  private rejoinDurable(master: HostMaster): Promise<void> {
    const rejoins: Promise<void>[] = [];
    for (const session of this.sessions.values()) {
      if (!(session instanceof DurableShell) || session.info.masterId !== master.id || !session.reconnecting || this.rejoining.has(session.id)) continue;
      this.rejoining.add(session.id);
      const rejoin = (async () => {
        for (let attempt = 1; session.reconnecting && session.state === 'open' && master.view().state === 'ready'; attempt++) {
          const start = controlCommand(session.name, session.terminalSize, 'attach');
          try {
            // Rejoins attach side by side; nothing that could crash tmux happens meanwhile.
            const gone = await this.lane(master.id).beside(async () => {
              // Closed or rejoined while waiting for its turn: nothing to start.
              if (session.state !== 'open' || !session.reconnecting) return false;
              const { channel, connection } = await master.openSession({ kind: 'exec', command: start.command, pty: null, pipelined: true });
              const ended = channelEnd(channel);
              try {
                await session.carry(channel, connection, start);
                return false;
              } catch (err) {
                if (err instanceof AttachedCarrierError) {
                  this.detachAlone(master.id, channel, ended);
                  throw err;
                }
                const { status, stderr } = await ended;
                // tmux refused to attach because the session is gone from the host (another
                // failure is tried again).
                const why = `${stderr} ${(err as Error).message}`;
                if (status !== null && status !== 0 && /can't find session|no server running|no sessions/.test(why)) {
                  this.options.log.warn('durable shell lost: tmux no longer has it', { session: session.id, status, error: why.trim() });
                  return true;
                }
                throw err;
              }
            });
            if (gone) {
              session.lost();
              return;
            }
            if (this.options.processTrees !== false) this.trees.rootKnown(master, session);
            this.options.log.info('durable shell rejoined', { session: session.id, attempt });
            return;
          } catch (err) {
            this.options.log.warn('durable shell not rejoined yet', { session: session.id, attempt, error: (err as Error).message });
            if (attempt >= REJOIN_TRIES) {
              session.lost();
              return;
            }
            await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
          }
        }
      })().finally(() => this.rejoining.delete(session.id));
      rejoins.push(rejoin);
    }
    return Promise.all(rejoins).then(() => undefined);
  }

  /**
   * Probes every ready master at once, with a short deadline: after a wake or a network
   * change, a dead connection is found in about one round trip plus the deadline instead of
   * several keepalive intervals, and reconnects (its durable shells rejoin). A master waiting
   * out its reconnect backoff tries again now: the network may be back.
   */
  async probeMasters(deadlineMs = PROBE_DEADLINE_MS): Promise<{ masterId: string; answered: boolean }[]> {
    for (const m of this.masters.values()) m.retryNow();
    const ready = [...this.masters.values()].filter((m) => m.view().state === 'ready');
    return Promise.all(ready.map(async (m) => ({ masterId: m.id, answered: await m.probe(deadlineMs) })));
  }

  /**
   * Lists Hitch's durable shells on the host that no session here carries (left by an earlier
   * run of Hitch, or detached): the master shows them, to reopen with one action.
   */
  private async listLeftRunning(master: HostMaster): Promise<void> {
    if (this.withoutTmux.has(master.id) || !(this.options.durableShells ?? this.settings.get().durableShells)) return;
    try {
      const connection = master.readyConnections()[0];
      if (!connection) return;
      const channel = await connection.openInternal(LIST_COMMAND);
      const text = await new Promise<string>((resolve) => {
        const chunks: Buffer[] = [];
        channel.on('data', (chunk: Buffer) => chunks.push(chunk));
        channel.stderr.on('data', () => undefined);
        channel.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
      const carried = new Set([...this.startingNames, ...[...this.sessions.values()].flatMap((s) => (s instanceof DurableShell && s.state === 'open' ? [s.name] : []))]);
      const left = parseLeftRunning(text).filter((shell) => !carried.has(shell.name));
      master.setLeftRunning(left);
    } catch (err) {
      this.options.log.debug('durable shells on the host not listed', { master: master.id, error: (err as Error).message });
    }
  }

  /** A durable shell left running on the host, as a session of `owner` again. */
  async reopenDurable(hostId: string, name: string, size: { cols: number; rows: number }, owner: string | null): Promise<SessionView> {
    const master = await this.masterFor(await this.resolved(hostId));
    const carried = [...this.sessions.values()].some((s) => s instanceof DurableShell && s.name === name && s.state === 'open');
    if (carried || this.startingNames.has(name)) throw new HitchError('bad-request', 'That shell is open in Hitch already.');
    this.startingNames.add(name);
    try {
      const start = controlCommand(name, size, 'attach');
      const shell = await this.lane(master.id).beside(async () => {
        const { channel, connection } = await master.openSession({ kind: 'exec', command: start.command, pty: null, pipelined: true });
        const shell = new DurableShell(this.sessionInfo(master, { hostId, kind: 'shell', command: null, owner, tty: true }), name, this.keysMark, connection, size);
        const ended = channelEnd(channel);
        try {
          await shell.carry(channel, connection, start);
        } catch (err) {
          if (err instanceof AttachedCarrierError) this.detachAlone(master.id, channel, ended);
          throw new HitchError('unknown-session', `The shell ${name} is no longer running on ${hostId} (${(err as Error).message}).`);
        }
        return shell;
      });
      this.track(master, shell);
      // Its client went while it was being reopened: it is left running, as it was.
      if (owner !== null && !this.owners.holds(owner)) this.closeSession(shell.id, true);
      void this.listLeftRunning(master);
      return shell.view();
    } finally {
      this.startingNames.delete(name);
    }
  }

  /** Makes a session (its channel open) one of the engine's: listed, its processes watched, signalled, closed. */
  private track(master: HostMaster, session: Session): Session {
    const info = session.info;
    this.sessions.set(session.id, session);
    master.sessionOpened();
    session.on('data', (offset, data, stream, reset) =>
      this.emit({
        event: 'session.data',
        payload: { sessionId: session.id, offset, data, stream, ...(typeof data !== 'string' ? { encoding: 'bytes' as const } : {}), ...(reset ? { reset: true as const } : {}) },
      }),
    );
    let endSeen = false;
    session.on('changed', () => {
      if (endSeen) return; // an ended session's end is handled once
      const ended = session.state !== 'open';
      endSeen = ended;
      // A stock client's session is its client's to show: once it ends, the master keeps only
      // how it ended, and the engine lets it go (else every `git fetch` would leave one behind).
      const external = session.info.external === true && !session.info.run;
      // A durable shell lost its carrier while the master stayed up (an extra connection
      // dropped, the tmux client died): it is brought back without waiting for a reconnect.
      if (session instanceof DurableShell && session.reconnecting) setTimeout(() => void this.rejoinDurable(master), 1_000).unref();
      if (ended) {
        const view = session.view();
        master.sessionEnded(external ? { id: view.id, title: view.title, exitCode: view.exitCode, exitSignal: view.exitSignal, endedAt: Date.now() } : undefined);
        this.trees.release(master);
        this.options.log.info('session ended', { session: session.id, state: session.state, exitCode: session.exitCode });
      }
      this.emit({ event: 'session.changed', payload: session.view() });
      if (ended) this.keepOrRemoveEnded(session);
    });
    this.emit({ event: 'session.changed', payload: session.view() });
    if (this.options.processTrees !== false) {
      if (session instanceof DurableShell) this.trees.rootKnown(master, session);
      else this.trees.sessionOpened(master, session);
    }
    this.options.log.info('session opened', { host: info.hostId, master: master.id, session: session.id, kind: info.kind, external: info.external ?? false });
    return session;
  }

  private session(sessionId: string): Session {
    const session = this.sessions.get(sessionId);
    if (!session) throw new HitchError('unknown-session', `No session ${sessionId}.`);
    return session;
  }

  /** Resolves once the session's channel has taken the data. `base64`: binary input. */
  writeSession(sessionId: string, data: string, encoding: 'utf8' | 'base64' = 'utf8'): Promise<void> {
    return this.session(sessionId).write(encoding === 'base64' ? Buffer.from(data, 'base64') : data);
  }

  /** Ends an exec session's input, like closing its stdin. */
  endSessionInput(sessionId: string): void {
    this.session(sessionId).endInput();
  }

  resizeSession(sessionId: string, cols: number, rows: number): void {
    this.session(sessionId).resize(cols, rows);
  }

  /**
   * Closes a session and removes it once closed. Its remote processes are hung up, unless
   * `keep` asks to leave a command without a terminal running.
   */
  closeSession(sessionId: string, keep = false): void {
    const session = this.session(sessionId);
    if (session.state !== 'open') {
      this.removeSession(sessionId);
      return;
    }
    this.dismissed.add(sessionId);
    // A carrier detaching and a session ending are both alone on the lane (tmux-lane.ts); how
    // is decided when its turn comes, as the shell may have lost or regained its carrier.
    if (session instanceof DurableShell) {
      this.lane(session.info.masterId)
        .alone(() => this.closeDurable(session, keep))
        .catch((err: Error) => this.options.log.warn('durable shell not closed cleanly', { session: sessionId, error: err.message }));
    }
    else session.close(keep);
  }

  /** Closes a durable shell (`keep`: detaches it, left running on the host); alone on its master's lane. */
  private async closeDurable(session: DurableShell, keep: boolean): Promise<void> {
    if (session.state !== 'open') return;
    if (session.carried) {
      session.close(keep); // its carrier kills the tmux session first, unless kept
      await session.carrierGone(CARRIER_CLOSE_WAIT_MS);
      return;
    }
    // Nothing carries it to tmux now: its shell ends on the host now, or once it is back.
    session.close(keep);
    if (keep) return;
    const master = this.masters.get(session.info.masterId);
    if (master?.view().state === 'ready') await this.execQuietly(master, killCommand(session.name));
    else this.killsOwed.set(session.info.masterId, (this.killsOwed.get(session.info.masterId) ?? new Set<string>()).add(session.name));
  }

  /** Ends on the host the durable shells closed while nothing carried them; resolves once they have. */
  private async payKillsOwed(master: HostMaster): Promise<void> {
    const owed = this.killsOwed.get(master.id);
    this.killsOwed.delete(master.id);
    if (!owed) return;
    await this.lane(master.id).alone(() => Promise.all([...owed].map((name) => this.execQuietly(master, killCommand(name)))));
  }

  /**
   * An ended session stays listed only while someone may want to see how it ended: a tab of a
   * client still there, and then only the newest MAX_ENDED_SESSIONS. A stock client's session
   * is its client's to show (the master keeps a line about it); one closed by the user, or
   * whose client has gone, has nobody to show it to.
   */
  private keepOrRemoveEnded(session: Session): void {
    const owner = session.info.owner ?? null;
    if (session.info.external || this.dismissed.has(session.id) || (owner !== null && !this.owners.holds(owner))) {
      this.removeSession(session.id);
      return;
    }
    this.ended.add(session.id);
    for (const oldest of this.ended) {
      if (this.ended.size <= MAX_ENDED_SESSIONS) break;
      this.removeSession(oldest);
    }
  }

  private removeSession(sessionId: string): void {
    this.dismissed.delete(sessionId);
    this.ended.delete(sessionId);
    if (this.sessions.delete(sessionId)) this.emit({ event: 'session.removed', payload: { sessionId } });
  }

  // -- clients ---------------------------------------------------------------------------

  /** A client of the engine arrived (or came back within its grace period, by its key). */
  clientJoined(owner: string): SessionView[] {
    this.owners.joined(owner);
    return [...this.sessions.values()].filter((s) => s.info.owner === owner).map((s) => s.view());
  }

  /** A client went: its sessions end after `graceMs`, unless it comes back first. */
  clientLeft(owner: string, graceMs: number): void {
    this.owners.left(owner, graceMs);
  }

  /** The client has gone for good: it hangs up what it held and lets go of what had ended. */
  private releaseOwner(owner: string): void {
    const held = [...this.sessions.values()].filter((s) => s.info.owner === owner);
    if (held.length > 0) this.options.log.info('client gone: ending its sessions', { sessions: held.length });
    for (const session of held) this.closeSession(session.id);
  }

  /** Whether the session's held output is skipped and redrawn (a durable shell) rather than stopped. */
  skipsHeldOutput(sessionId: string): boolean {
    return this.sessions.get(sessionId) instanceof DurableShell;
  }

  /** A client's transport is full, or drained again: the session's output waits for it (Session.holdOutput). */
  holdOutput(sessionId: string, holder: string, on: boolean): void {
    this.sessions.get(sessionId)?.holdOutput(holder, on);
  }

  /** A `hitch exec` run is its client's alone: no other client types into it, resizes or ends it. */
  checkHands(sessionId: string, owner: string): void {
    const session = this.session(sessionId);
    if (isPrivateRun(session.info) && session.info.owner !== owner) {
      throw new HitchError('forbidden', `Session ${sessionId} is a \`hitch exec\` run by another client: only that client may use it.`);
    }
  }

  /**
   * The session's output so far, for a client about to stream it. A `hitch exec` run's output
   * belongs to the client that ran it alone.
   */
  attachSession(sessionId: string, owner: string): { data: string; end: number; encoding?: 'base64' } {
    const session = this.session(sessionId);
    if (isPrivateRun(session.info) && session.info.owner !== owner) {
      throw new HitchError('forbidden', `Session ${sessionId} is a \`hitch exec\` run by another client: its output goes only to that client.`);
    }
    return session.replay();
  }

  // -- prompts and secrets ----------------------------------------------------------------

  answerPrompt(promptId: string, answer: PromptAnswer): void {
    this.prompter.answer(promptId, answer);
  }

  cancelPrompt(promptId: string): void {
    this.prompter.cancel(promptId);
  }

  /** Removes the host's remembered password and key passphrases from the keychain. */
  async forgetSecrets(hostId: string): Promise<{ removed: number }> {
    const host = await this.resolved(hostId);
    const accounts = [passwordAccount(host), ...host.identityFiles.map((f) => passphraseAccount(expandHome(f)))];
    let removed = 0;
    for (const account of accounts) if (await this.options.secrets.delete(account)) removed++;
    this.options.log.info('secrets forgotten', { host: hostId, removed });
    return { removed };
  }

  // -- processes ---------------------------------------------------------------------------

  private async connectedMaster(hostId: string): Promise<HostMaster> {
    const host = await this.resolved(hostId);
    const master = this.masters.get(masterIdOf(host));
    if (!master || master.state !== 'ready') throw new HitchError('not-connected', `${hostId} is not connected.`);
    return master;
  }

  async processTree(hostId: string): Promise<ProcessTreeView> {
    const master = await this.connectedMaster(hostId);
    return { masterId: master.id, processes: await this.trees.refresh(master) };
  }

  async watchProcesses(hostId: string, intervalMs: number): Promise<void> {
    this.trees.watch(await this.connectedMaster(hostId), intervalMs);
  }

  async signalProcess(hostId: string, pid: number, signal: SignalName, scope: SignalScope): Promise<SignalOutcome[]> {
    const outcomes = await this.trees.signal(await this.connectedMaster(hostId), pid, signal, scope);
    this.options.log.info('signal sent', { host: hostId, pid, signal, scope, outcomes: outcomes.map((o) => `${o.pid}:${o.outcome}`).join(' ') });
    return outcomes;
  }

  async stopProcess(hostId: string, pid: number, scope: SignalScope, graceMs: number): Promise<SignalOutcome[]> {
    const outcomes = await this.trees.stop(await this.connectedMaster(hostId), pid, scope, graceMs);
    this.options.log.info('job stopped', { host: hostId, pid, scope, outcomes: outcomes.map((o) => `${o.pid}:${o.outcome}`).join(' ') });
    return outcomes;
  }

  /**
   * Runs a command on the host's master and hands back its raw channel, for callers that
   * stream the output themselves (the benchmark's throughput run). Not a session in the UI.
   */
  async execChannel(hostId: string, command: string): Promise<ClientChannel> {
    const master = await this.masterFor(await this.resolved(hostId));
    const { channel } = await master.openSession({ kind: 'exec', command, pty: null });
    return channel;
  }

  // -- files and transfers -----------------------------------------------------------------

  /** The host's master, connected (asking a person if logging in needs one), and its SFTP session. */
  private async filesOf(hostId: string): Promise<{ master: HostMaster; sftp: Awaited<ReturnType<SftpSessions['of']>> }> {
    const master = await this.masterFor(await this.resolved(hostId));
    await master.connect();
    return { master, sftp: await this.sftpSessions.of(master, hostId) };
  }

  /** A directory on the host; `path` relative to the login directory ('.' is it). */
  async listFiles(hostId: string, path: string): Promise<DirectoryView> {
    return listDirectory((await this.filesOf(hostId)).sftp, hostId, path);
  }

  async makeDirectory(hostId: string, path: string): Promise<{ path: string }> {
    const made = await makeDirectory((await this.filesOf(hostId)).sftp, hostId, path);
    this.options.log.info('directory made', { host: hostId, path: made });
    return { path: made };
  }

  /** Renames on the host; refused (`exists`) rather than replace `to`. */
  async renameFile(hostId: string, from: string, to: string): Promise<void> {
    await renamePath((await this.filesOf(hostId)).sftp, hostId, from, to);
    this.options.log.info('file renamed', { host: hostId, from, to });
  }

  /** Deletes a file, a symlink, or a directory with everything in it (symlinks inside are not followed). */
  async deleteFile(hostId: string, path: string): Promise<void> {
    const { sftp } = await this.filesOf(hostId);
    // A slip of the UI or a script must not empty the whole host or the login directory.
    const [target, home, link] = await Promise.all([sftp.realpath(path), sftp.realpath('.'), sftp.lstat(path).then((s) => s.isSymbolicLink())]);
    if (!link && (target === '/' || target === home)) throw new HitchError('bad-request', `Hitch does not delete ${target === '/' ? 'the root directory' : 'the login directory'} of ${hostId}.`);
    await deletePath(sftp, path);
    this.options.log.info('file deleted', { host: hostId, path });
  }

  /**
   * The working directory of a session's shell, read from /proc/PID/cwd on the host over SFTP:
   * nothing is typed into the shell. The root pid comes from the process tree (a durable
   * shell's is its tmux pane's).
   */
  async sessionCwd(sessionId: string): Promise<{ path: string }> {
    const session = this.session(sessionId);
    if (session.state !== 'open') throw new HitchError('unknown-session', `Session ${sessionId} has ended.`);
    const master = this.masters.get(session.info.masterId);
    if (!master || master.state !== 'ready') throw new HitchError('not-connected', `${session.info.hostId} is not connected.`);
    if (session.rootPid === null && this.options.processTrees !== false) await this.trees.refresh(master).catch(() => undefined);
    if (session.rootPid === null) {
      throw new HitchError('not-found', `The shell of ${sessionId} has no known process on ${session.info.hostId} yet (process watching is off, or it has not been seen): its directory cannot be read.`);
    }
    const sftp = await this.sftpSessions.of(master, session.info.hostId);
    return { path: await processCwd(sftp, session.info.hostId, session.rootPid) };
  }

  /**
   * Queues a copy between a file on this computer and one on the host (connecting the master
   * first). A directory as the destination takes the file under its own name. Fails at once
   * when the source is missing or the destination exists and `ifExists` is `fail`.
   */
  async startTransfer(request: { hostId: string; direction: 'upload' | 'download'; localPath: string; remotePath: string; ifExists?: IfExists; exact?: boolean }): Promise<TransferView> {
    const { master, sftp } = await this.filesOf(request.hostId);
    return this.transfers.start(master, sftp, { ...request, ifExists: request.ifExists ?? 'fail' });
  }

  cancelTransfer(transferId: string): void {
    this.transfers.cancel(transferId);
  }

  listTransfers(): TransferView[] {
    return this.transfers.list();
  }

  /**
   * The web host's upload: `size` bytes from `body` (read with backpressure) to `name` in the
   * directory `remotePath` (or to `remotePath` itself if it is not a directory). Resolves once
   * queued; a reconnect pauses it and it goes on, sending again what was not acknowledged.
   */
  async uploadFromStream(request: { hostId: string; remotePath: string; name: string; size: number; body: Readable; ifExists?: IfExists }): Promise<TransferView> {
    const { master, sftp } = await this.filesOf(request.hostId);
    return this.transfers.startUploadStream(master, sftp, { ...request, ifExists: request.ifExists ?? 'fail' });
  }

  /** The web host's download: the file's bytes as a stream, listed in the queue (a cancel ends the stream with an error). */
  async downloadToStream(request: { hostId: string; remotePath: string }): Promise<{ transfer: TransferView; size: number; name: string; body: Readable }> {
    const { master, sftp } = await this.filesOf(request.hostId);
    return this.transfers.startDownloadStream(master, sftp, request.hostId, request.remotePath);
  }

  // -- benchmark ---------------------------------------------------------------------------

  /** Measures what multiplexing saves on this host, and keeps the report in the history. */
  async bench(hostId: string, rounds: number): Promise<BenchReport> {
    if (this.benches.has(hostId)) throw new HitchError('bad-request', `A benchmark of ${hostId} is already running.`);
    const host = await this.resolved(hostId);
    const master = await this.masterFor(host);
    await master.connect();
    await this.controlSockets?.settled(master);
    const abort = new AbortController();
    this.benches.set(hostId, abort);
    master.retain(); // no idle close in the middle of a run
    try {
      const report = await runBench(
        {
          hostId,
          host,
          master,
          configPath: this.options.sshConfigPath,
          sshBinary: this.options.sshBinary,
          hitchKnownHosts: this.options.knownHostsPath,
          controlPath: master.controlPath,
        },
        {
          rounds,
          signal: abort.signal,
          onProgress: (done, total, method) => this.emit({ event: 'bench.progress', payload: { hostId, done, total, method } }),
        },
      );
      await this.benchHistory.add(report);
      this.options.log.info('benchmark done', { host: hostId, results: report.results.map((r) => `${r.method}=${r.median_ms}ms`).join(' ') });
      return report;
    } finally {
      this.benches.delete(hostId);
      master.release();
    }
  }

  cancelBench(hostId: string): void {
    const run = this.benches.get(hostId);
    if (!run) throw new HitchError('bad-request', `No benchmark of ${hostId} is running.`);
    run.abort();
  }

  async benchReports(hostId: string): Promise<BenchReport[]> {
    return this.benchHistory.of(hostId);
  }

  exportBench(hostId: string, format: 'json' | 'csv'): Promise<{ filename: string; mime: string; text: string }> {
    return this.benchHistory.export(hostId, format);
  }

  // -- ssh config for stock clients --------------------------------------------------------

  private snippetPath(): string {
    return `${this.options.dataDir}/ssh_config.hitch`;
  }

  /** Per catalog host that can have a master: its control path, ControlMaster no. */
  async sshConfigSnippet(): Promise<SshConfigSnippet> {
    const catalog = await this.loadedCatalog();
    const sockets = this.controlSockets;
    if (!sockets) throw new HitchError('bad-request', 'Control sockets are turned off in this Hitch.');
    const hosts: SnippetHost[] = [];
    for (const entry of catalog.entries) {
      const r = entry.resolved;
      if (!r) continue;
      hosts.push({
        alias: entry.alias,
        controlPath: sockets.pathFor({ hostname: r.hostname, port: r.port, user: r.user, jump: r.proxyJump }),
        address: entry.source === 'app' ? { hostname: r.hostname, port: r.port, user: r.user } : null,
      });
    }
    return snippet(hosts, this.snippetPath());
  }

  /** Once included, the snippet follows the host list (a host added in Hitch gets its ControlPath too). */
  private async refreshSnippet(): Promise<void> {
    if (!this.controlSockets || !(await access(this.snippetPath()).then(() => true, () => false))) return;
    try {
      await writeAtomically(this.snippetPath(), (await this.sshConfigSnippet()).text);
    } catch (err) {
      this.options.log.warn('ssh config snippet not refreshed', { error: (err as Error).message });
    }
  }

  /** Shows, or with `apply` makes, the one-line Include of the snippet in the ssh config Hitch reads. */
  async sshConfigInclude(apply: boolean): Promise<SshConfigInclude> {
    const result = await includeSnippet(this.options.sshConfigPath, await this.sshConfigSnippet(), apply);
    if (apply) this.options.log.info('ssh config snippet included', { config: result.configPath, snippet: result.snippetPath, changed: result.applied });
    return result;
  }

  /** Closes every master; used when the app quits. Resolves once the control sockets are removed. */
  shutdown(): Promise<void> {
    this.owners.clear();
    this.wake.stop();
    // Transfers under way fail with their masters, keeping their part files to resume.
    this.sftpSessions.closeAll();
    for (const master of this.masters.values()) master.disconnect();
    return Promise.all([this.forwards.shutdown(), this.controlSockets?.shutdown()]).then(() => undefined);
  }
}

// The master for one destination (user@host:port, possibly via jump hosts): what OpenSSH's
// ControlMaster is, without its flaws. It holds one SSH connection, plus more when the
// server's MaxSessions is reached; reconnects with backoff when the connection drops and no
// person is needed to log in again; and stays up while idle until the idle timeout.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import type { EndedSessionView, LeftRunningView, MasterState, MasterView } from '../../../preload/api';
import type { AuthDeps } from './auth';
import { HitchError } from '../errors';
import { MasterConnection, tcpTransport, type SessionRequest, type Timing } from './master';
import type { ResolvedHost } from '../config/ssh-config';

export interface HostMasterOptions extends AuthDeps {
  id: string;
  host: ResolvedHost;
  /** The master of the previous hop when this host is reached through ProxyJump. */
  via: HostMaster | null;
  hitchKnownHosts: string;
  acceptedOnce: Set<string>;
  timing: Timing;
  /** Close after this long without sessions; null keeps the master up until disconnected. */
  idleTimeoutMs: () => number | null;
  /** Keep a session channel open ahead of need on each connection. */
  spareChannel: boolean;
}

/** A connection with none of the person's sessions on it: only Hitch's own channels, if any. */
function carriesNoSession(connection: MasterConnection): boolean {
  return connection.sessionsInUse - connection.monitorChannels === 0;
}

/** Errors of a jump host, already named as such for the hosts behind it. */
const jumpFailures = new WeakSet<HitchError>();

/**
 * Reconnect delays: at once (a blip usually leaves the network usable, and durable shells
 * wait), then 1 s doubling to 10 s. A try while the network is down costs the server nothing;
 * logins the server refuses are never retried (see scheduleReconnect).
 */
const BACKOFF_MS = [0, 1000, 2000, 4000, 8000, 10000];
/** A connection that stayed up this long starts the backoff afresh when it drops. */
export const STABLE_MS = 10_000;

/** Ended stock-client sessions a master remembers (they are listed per host, not as tabs). */
export const RECENT_EXTERNAL = 5;

export class HostMaster extends EventEmitter<{ changed: []; dropped: [connection: MasterConnection] }> {
  state: MasterState = 'closed';
  error: HitchError | null = null;
  sessionLimit: number | null = null;
  reconnectAt: number | null = null;
  private servedPath: string | null = null;
  /** Stock clients' sessions that ended, newest first, at most RECENT_EXTERNAL. */
  private readonly endedExternal: EndedSessionView[] = [];
  private leftRunning: LeftRunningView[] = [];

  /** The first is the primary; the others exist because of MaxSessions. */
  private connections: MasterConnection[] = [];
  private connecting: Promise<MasterConnection> | null = null;
  /** A further connection being opened past MaxSessions, shared by every session waiting for room. */
  private extraConnecting: Promise<MasterConnection> | null = null;
  /** Sessions and dependent masters (hosts behind this one) in use. */
  private users = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectAttempt = 0;
  /** When the primary connection last became ready (a quick drop after it keeps backing off). */
  private readyAt = 0;
  /** Set by disconnect(): a dropped connection is then not re-established. */
  private stopped = false;

  constructor(private opts: HostMasterOptions) {
    super();
  }

  get id(): string {
    return this.opts.id;
  }

  /**
   * Aliases naming the same destination share this master. While it has no connection, the
   * alias being connected brings its own settings (its IdentityFile, say).
   */
  adopt(host: ResolvedHost): void {
    if (this.connections.length === 0 && !this.connecting) this.opts.host = host;
  }

  private get primary(): MasterConnection | undefined {
    return this.connections[0];
  }

  /** Applies to connections opened from now on. */
  setSpareChannel(on: boolean): void {
    this.opts.spareChannel = on;
  }

  /** The connections that carry sessions now, primary first. */
  readyConnections(): MasterConnection[] {
    return this.connections.filter((c) => c.state === 'ready');
  }

  view(): MasterView {
    const p = this.primary;
    return {
      id: this.id,
      state: this.state,
      error: this.error?.toInfo() ?? null,
      authMethod: p?.authMethod ?? null,
      hostKeyFingerprint: p?.hostKeyFingerprint ?? null,
      connectedAt: p?.connectedAt ?? null,
      sessions: this.connections.reduce((n, c) => n + c.sessionChannels - c.monitorChannels - c.spareChannels, 0),
      sessionLimit: this.sessionLimit,
      connections: this.connections.filter((c) => c.state === 'ready').length,
      needsPerson: p?.needsPerson ?? false,
      rememberedSecret: p?.rememberedSecret ?? false,
      reconnectAt: this.reconnectAt,
      bytesIn: this.connections.reduce((n, c) => n + c.bytesIn, 0),
      bytesOut: this.connections.some((c) => c.bytesOut === null) ? null : this.connections.reduce((n, c) => n + (c.bytesOut ?? 0), 0),
      latencyMs: p?.latencyMs ?? null,
      controlPath: this.controlPath,
      recentExternal: [...this.endedExternal],
      leftRunning: [...this.leftRunning],
      processesHidden: this.processesHidden,
    };
  }

  private setState(state: MasterState, error: HitchError | null = null): void {
    this.state = state;
    this.error = error;
    this.emit('changed');
  }

  /** Disconnected on purpose (by the person, or idle) and not asked to connect since. */
  get closedOnPurpose(): boolean {
    return this.stopped;
  }

  /** Makes sure the primary connection is up, logging in (and asking a person) if needed. */
  async connect(interactive = true): Promise<void> {
    this.stopped = false;
    if (this.primary?.state === 'ready') return;
    if (interactive) this.reconnectAttempt = 0; // a person asked: a failure backs off afresh
    await this.newConnection(interactive, true);
  }

  private newConnection(interactive: boolean, asPrimary: boolean): Promise<MasterConnection> {
    if (!asPrimary) return this.establish(interactive, false);
    // Concurrent callers share one attempt at the primary connection.
    this.connecting ??= this.establish(interactive, true).finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async establish(interactive: boolean, asPrimary: boolean): Promise<MasterConnection> {
    const { host, via } = this.opts;
    const connection = new MasterConnection({
      ...this.opts,
      masterId: this.id,
      interactive,
      openTransport: via ? () => this.throughJump(via, interactive) : () => tcpTransport(host),
    });
    if (asPrimary) {
      // A reconnect attempt stays "reconnecting" until it succeeds, as the person sees it.
      if (this.state !== 'reconnecting') this.setState('connecting');
      connection.on('state', () => {
        if (connection.state === 'authenticating' && this.state === 'connecting') this.setState('authenticating');
        else this.emit('changed');
      });
    }
    via?.retain(); // held from now on: a jump must not idle out while this host logs in through it
    try {
      // The jump logs in first, outside this host's connect timeout: a person may be typing for it.
      if (via) await this.loginToJump(via, interactive);
      await connection.connect();
    } catch (err) {
      via?.release();
      const error = err instanceof HitchError ? err : new HitchError('network', String(err));
      this.opts.log.warn('master failed', { master: this.id, code: error.code, error: error.message });
      if (asPrimary && this.state !== 'reconnecting') this.setState('failed', error);
      throw error;
    }
    connection.on('closed', (error) => this.onConnectionClosed(connection, error));
    if (asPrimary) this.connections.unshift(connection);
    else this.connections.push(connection);
    this.opts.log.info('master ready', { master: this.id, auth: connection.authMethod, connections: this.connections.length });
    this.reconnectAt = null;
    if (asPrimary) {
      this.readyAt = Date.now();
      this.setState('ready');
    }
    else this.emit('changed');
    this.armIdleTimer();
    return connection;
  }

  /** Connects the jump host's master; its failure becomes this host's, naming the jump. */
  private async loginToJump(via: HostMaster, interactive: boolean): Promise<void> {
    try {
      await via.connect(interactive);
    } catch (err) {
      const error = err instanceof HitchError ? err : new HitchError('network', String(err));
      if (jumpFailures.has(error)) throw error; // a hop further up the chain, already named
      const named = new HitchError(error.code, `Jump host ${via.opts.host.alias}: ${error.message}`, { cause: error });
      jumpFailures.add(named);
      throw named;
    }
  }

  /** The primary connection, once ready (the benchmark measures on it directly). */
  get primaryConnection(): MasterConnection | null {
    return this.primary?.state === 'ready' ? this.primary : null;
  }

  /**
   * A separate connection with this master's settings, logged in without asking anyone and
   * not added to the master: what a fresh `ssh host` costs, for the benchmark.
   */
  async standaloneConnection(): Promise<MasterConnection> {
    const { host, via } = this.opts;
    const connection = new MasterConnection({
      ...this.opts,
      masterId: `${this.id} (benchmark)`,
      interactive: false,
      spareChannel: false,
      openTransport: via ? () => this.throughJump(via, false) : () => tcpTransport(host),
    });
    await connection.connect();
    return connection;
  }

  /** The next hop's transport: a direct-tcpip channel on the jump host's master. */
  private async throughJump(via: HostMaster, interactive: boolean): Promise<Duplex> {
    await via.connect(interactive);
    return via.forwardOut(this.opts.host.hostname, this.opts.host.port);
  }

  async forwardOut(hostname: string, port: number): Promise<ClientChannel> {
    const primary = this.primary;
    if (!primary || primary.state !== 'ready') throw new HitchError('not-connected', `${this.id} is not connected.`);
    return primary.forwardOut(hostname, port);
  }

  private onConnectionClosed(connection: MasterConnection, error: HitchError | null): void {
    const ours = this.connections.includes(connection);
    this.connections = this.connections.filter((c) => c !== connection);
    this.opts.via?.release();
    this.emit('dropped', connection);
    if (!ours) return; // let go by disconnect(), which has said the master is closed
    if (this.connections.length > 0) {
      this.emit('changed'); // another connection carries on (and becomes the primary)
      return;
    }
    if (error === null || this.stopped) {
      this.clearTimers();
      this.setState('closed');
      return;
    }
    this.opts.log.warn('master dropped', { master: this.id, error: error.message });
    if (Date.now() - this.readyAt >= STABLE_MS) this.reconnectAttempt = 0;
    if (connection.needsPerson) {
      this.setState('failed', new HitchError(error.code, `${error.message} Logging in again needs you: use Connect.`));
      return;
    }
    this.scheduleReconnect(error);
  }

  private scheduleReconnect(error: HitchError): void {
    const delay = BACKOFF_MS[Math.min(this.reconnectAttempt, BACKOFF_MS.length - 1)]!;
    this.reconnectAttempt++;
    this.reconnectAt = Date.now() + delay;
    this.setState('reconnecting', error);
    this.reconnectTimer = setTimeout(() => this.reconnectNow(), delay);
  }

  private reconnectNow(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.stopped) return;
    this.newConnection(false, true).catch((err: HitchError) => {
      if (this.stopped) return;
      if (err.code === 'host-key-changed' || err.code === 'host-key-revoked' || err.code === 'auth') {
        this.reconnectAt = null;
        this.setState('failed', err); // retrying cannot help; a person must look
      } else {
        this.scheduleReconnect(err);
      }
    });
  }

  /**
   * The network may be back (a wake, a network change): a reconnect waiting out its backoff
   * tries now. Returns whether one was waiting.
   */
  retryNow(): boolean {
    if (!this.reconnectTimer) return false;
    this.reconnectNow();
    return true;
  }

  /**
   * Opens a session channel on a connection with room. Past the server's MaxSessions it
   * learns the limit; a process monitor then gives its slot to the session, and past that a
   * further connection opens: silently when logging in needs no person, after asking when it
   * does. Sessions opened at once share that connection.
   */
  async openSession(request: SessionRequest): Promise<{ channel: ClientChannel; connection: MasterConnection }> {
    return this.onConnectionWithRoom(async (connection) => ({ channel: await connection.openSession(request), connection }));
  }

  /**
   * An SFTP session (MasterConnection.openSftp) on a connection with room, the primary first;
   * past MaxSessions on a further connection, as a session would be.
   */
  openSftp(): Promise<{ sftp: SFTPWrapper; connection: MasterConnection }> {
    return this.onConnectionWithRoom(async (connection) => ({ sftp: await connection.openSftp(), connection }));
  }

  /** Runs `open` on the first ready connection with room for one more session channel, adding a connection if none has. */
  private async onConnectionWithRoom<T>(open: (connection: MasterConnection) => Promise<T>): Promise<T> {
    await this.connect();
    // Each round opens the channel, learns a connection is full, or adds a connection.
    for (;;) {
      this.learnLimit();
      const connection = this.connections.find((c) => c.state === 'ready' && this.hasRoom(c));
      if (!connection) {
        // Hitch's own process monitor gives its slot up before the person pays another login.
        if (!(await this.reclaimSlot())) await this.extraConnection();
        continue;
      }
      try {
        return await open(connection);
      } catch (err) {
        if (!(err instanceof HitchError) || err.code !== 'max-sessions') throw err;
        if (!connection.refusedAt) throw err; // refused with nothing open: another connection would be too
      }
    }
  }

  /** One further connection at a time, asked for once, however many sessions wait for it. */
  private extraConnection(): Promise<MasterConnection> {
    this.extraConnecting ??= (async () => {
      const needsPerson = this.primary?.needsPerson ?? false;
      if (needsPerson && !(await this.askForExtraConnection())) {
        throw new HitchError(
          'max-sessions',
          `${this.opts.host.alias} allows ${this.sessionsAllowed()} per connection (MaxSessions), and another connection was declined.`,
        );
      }
      return this.newConnection(needsPerson, false);
    })().finally(() => (this.extraConnecting = null));
    return this.extraConnecting;
  }

  /** A slot on a full connection that a channel of Hitch's own gives up (MasterConnection.reclaimSlot). */
  private async reclaimSlot(): Promise<boolean> {
    for (const c of this.connections) if (c.state === 'ready' && (await c.reclaimSlot())) return true;
    return false;
  }

  private sessionsAllowed(): string {
    const n = this.sessionLimit;
    return n === null ? 'no more sessions' : `${n} session${n === 1 ? '' : 's'}`;
  }

  private hasRoom(connection: MasterConnection): boolean {
    // Sessions still being opened count: a burst of opens must not overfill a connection.
    if (this.sessionLimit !== null) return connection.sessionsInUse < this.sessionLimit;
    return connection.refusedAt === null;
  }

  /** MaxSessions, from the channel counts at which connections were refused (a process monitor's refusal too). */
  private learnLimit(): void {
    for (const c of this.connections) {
      if (!c.refusedAt || (this.sessionLimit !== null && this.sessionLimit <= c.refusedAt)) continue;
      this.sessionLimit = c.refusedAt;
      this.opts.log.info('MaxSessions learned', { master: this.id, limit: this.sessionLimit });
      this.emit('changed');
    }
  }

  private async askForExtraConnection(): Promise<boolean> {
    const answer = await this.opts.prompter.ask({
      masterId: this.id,
      kind: 'extra-connection',
      title: `Open another connection to ${this.opts.host.alias}?`,
      message:
        `${this.opts.host.alias} allows ${this.sessionsAllowed()} per connection (its MaxSessions setting). ` +
        'Another connection can carry more sessions, but logging it in needs you again.',
      fields: [],
      canRemember: false,
    });
    return answer !== null && answer.choice !== null;
  }

  /** Set while an OpenSSH-compatible control socket serves this master. */
  get controlPath(): string | null {
    return this.servedPath;
  }

  /** The control socket now serving this master (null: none); the UI hears of a change. */
  setControlPath(path: string | null): void {
    if (path === this.servedPath) return;
    this.servedPath = path;
    this.emit('changed');
  }

  /** Probes every ready connection at once (see MasterConnection.probe); true if all answered. */
  async probe(deadlineMs: number): Promise<boolean> {
    const answers = await Promise.all(this.readyConnections().map((c) => c.probe(deadlineMs)));
    return answers.every(Boolean);
  }

  /** Durable shells on the host that no session of the engine carries (its owner says which). */
  setLeftRunning(shells: LeftRunningView[]): void {
    if (JSON.stringify(shells) === JSON.stringify(this.leftRunning)) return;
    this.leftRunning = shells;
    this.emit('changed');
  }

  private processesHidden: string | null = null;

  /** Why some sessions' processes are not shown now (ProcessTrees), null when all are. */
  setProcessesHidden(why: string | null): void {
    if (why === this.processesHidden) return;
    this.processesHidden = why;
    this.emit('changed');
  }

  /** Counts a session (or a host behind this one) as using the master. */
  retain(): void {
    this.users++;
    this.clearIdleTimer();
  }

  /** Transfers running: an extra connection carrying the SFTP session stays while there are any. */
  private transfers = 0;

  private sftpIdleTimer: NodeJS.Timeout | null = null;

  /** A transfer holds the master, and the SFTP session wherever it is, until transferEnded. */
  transferStarted(): void {
    if (this.sftpIdleTimer) clearTimeout(this.sftpIdleTimer);
    this.sftpIdleTimer = null;
    this.transfers++;
    this.retain();
  }

  transferEnded(): void {
    this.transfers = Math.max(0, this.transfers - 1);
    this.release();
  }

  /** A session on this master opened: it holds the master, and the UI's count changes. */
  sessionOpened(): void {
    this.retain();
    this.emit('changed');
  }

  /** A session on this master ended; a stock client's is remembered among the last few. */
  sessionEnded(external?: EndedSessionView): void {
    if (external) {
      this.endedExternal.unshift(external);
      this.endedExternal.length = Math.min(this.endedExternal.length, RECENT_EXTERNAL);
    }
    this.release();
    this.emit('changed');
  }

  release(): void {
    this.users = Math.max(0, this.users - 1);
    // Extra connections close once they carry no session (a process monitor alone does not
    // count), so only the primary idles. An SFTP session keeps one while transfers run (they
    // hold the master, not their channel), and a while after (timing.sftpIdleMs): the next
    // file of a copy would otherwise cost a login.
    for (const extra of this.connections.slice(1)) {
      if (!carriesNoSession(extra)) continue;
      if (extra.sftpChannels === 0 || this.users === 0) extra.close();
      else if (this.transfers === 0) this.armSftpIdleTimer();
    }
    this.armIdleTimer();
  }

  private armSftpIdleTimer(): void {
    if (this.sftpIdleTimer) return;
    this.sftpIdleTimer = setTimeout(() => {
      this.sftpIdleTimer = null;
      if (this.transfers > 0) return;
      for (const extra of this.connections.slice(1)) if (carriesNoSession(extra)) extra.close();
    }, this.opts.timing.sftpIdleMs);
    this.sftpIdleTimer.unref();
  }

  private armIdleTimer(): void {
    this.clearIdleTimer();
    const timeout = this.opts.idleTimeoutMs();
    if (this.users > 0 || timeout === null || this.state !== 'ready') return;
    this.idleTimer = setTimeout(() => {
      this.opts.log.info('master idle, closing', { master: this.id, idleMs: timeout });
      this.disconnect();
    }, timeout);
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private clearTimers(): void {
    this.clearIdleTimer();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.reconnectAt = null;
  }

  /** Closes every connection (and so every session); no reconnect follows. */
  disconnect(): void {
    this.stopped = true;
    this.clearTimers();
    this.opts.prompter.cancelFor(this.id);
    // The connections leave the master now, not when their close completes: a Connect right
    // after this logs in afresh instead of finding the old primary still "ready".
    const closing = this.connections;
    this.connections = [];
    if (this.state !== 'closed') this.setState('closed');
    for (const c of closing) c.close();
  }
}

// One authenticated SSH connection: the ssh2 Client, its host key check and authentication,
// and the channels opened on it. A HostMaster holds one or more of these per destination.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { connect as tcpConnect, Socket } from 'node:net';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { answerServerDebug, openBareSession, ping, requestExec, requestPty, requestShell, requestSubsystem, signKeysAtOnce } from './ssh2-channels';
import { AuthOutcome, createAuthHandler, type AuthDeps } from './auth';
import { coalesceWrites } from './coalesce-writes';
import { HitchError, toHitchError, type ErrorCode } from '../errors';
import { addKnownHost, fingerprint, keyTypeOf, readKnownHosts, verifyHostKey, type HostKeyVerdict } from './known-hosts';
import { expandHome } from '../paths';
import type { ResolvedHost } from '../config/ssh-config';

export interface Timing {
  /** TCP connect, handshake and the non-interactive part of authentication. */
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  /** An extra connection left with only an SFTP session and no transfer closes after this long. */
  sftpIdleMs: number;
}

export const DEFAULT_TIMING: Timing = { connectTimeoutMs: 20_000, keepaliveIntervalMs: 15_000, keepaliveCountMax: 3, sftpIdleMs: 10_000 };

export interface ConnectionOptions extends AuthDeps {
  masterId: string;
  host: ResolvedHost;
  /** A transport to the server: a TCP socket, or a channel through a jump host. */
  openTransport(): Promise<Duplex>;
  /** Hitch's own known_hosts, consulted after the host's and written when a key is accepted. */
  hitchKnownHosts: string;
  /** Host keys accepted "once" in this run, as `name port fingerprint`. */
  acceptedOnce: Set<string>;
  timing: Timing;
  /** False for automatic reconnects: nothing may wait for a person. */
  interactive: boolean;
  /** Keep one session channel open ahead of need (one round trip less per session). */
  spareChannel: boolean;
}

export type SessionRequest =
  | { kind: 'shell'; cols: number; rows: number }
  /**
   * `pipelined`: the exec's answer is not awaited (one round trip less); the command's own
   * output, or the channel closing, says how it went.
   */
  | { kind: 'exec'; command: string; pty: { cols: number; rows: number } | null; pipelined?: boolean }
  /** The caller gives the channel its purpose: what a stock client asked for through a control socket. */
  | { kind: 'custom'; setup(channel: ClientChannel): Promise<void> };

/** A connection the server forwards to us (ssh -R): where it arrived and where it came from. */
export interface ForwardedConnectionInfo {
  destIP: string;
  destPort: number;
  srcIP: string;
  srcPort: number;
}

/** The error a server's refusal to open another channel carries (ssh2 sets `reason`). */
const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;
const OPEN_CONNECT_FAILED = 2;

/** A direct TCP socket with TCP_NODELAY: without it each exchange waits ~40 ms on a delayed ACK. */
export function tcpTransport(host: ResolvedHost): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host: host.hostname, port: host.port });
    sock.setNoDelay(true);
    sock.once('connect', () => {
      sock.removeListener('error', reject);
      resolve(sock);
    });
    sock.once('error', (err) => reject(socketError(err, host)));
  });
}

/** Turns a socket-level failure into a sentence about the host, not about Node. */
export function socketError(err: NodeJS.ErrnoException, host: ResolvedHost): HitchError {
  if (err instanceof HitchError) return err;
  const where = `${host.hostname} port ${host.port}`;
  const byCode: Record<string, [ErrorCode, string]> = {
    ENOTFOUND: ['dns', `Cannot resolve host name "${host.hostname}" (host ${host.alias}).`],
    EAI_AGAIN: ['dns', `Cannot resolve host name "${host.hostname}" right now: the name server did not answer.`],
    ECONNREFUSED: ['refused', `Connection refused by ${where}: no SSH server is listening there.`],
    ETIMEDOUT: ['timeout', `Connection to ${where} timed out.`],
    EHOSTUNREACH: ['network', `No route to ${where}.`],
    ENETUNREACH: ['network', `Network unreachable for ${where}.`],
    ECONNRESET: ['network', `Connection to ${where} was reset.`],
    EPIPE: ['network', `Connection to ${where} was closed while sending.`],
  };
  const known = err.code ? byCode[err.code] : undefined;
  if (known) return new HitchError(known[0], known[1], { cause: err });
  return new HitchError('network', `Connection to ${where} failed: ${err.message}`, { cause: err });
}

/** What the host key check found during one connect: it explains a connect that failed. */
interface HostKeyCheck {
  verdict: HostKeyVerdict | null;
  /** Known, or accepted by the config or the person. */
  ok: boolean;
  /** Unknown, and the person, asked, did not accept it. */
  declined: boolean;
  /** Why the host key could not be checked at all (e.g. an unreadable known_hosts file). */
  error: HitchError | null;
}

export class MasterConnection extends EventEmitter<{ closed: [error: HitchError | null]; state: [] }> {
  state: 'connecting' | 'authenticating' | 'ready' | 'closed' = 'connecting';
  authMethod: string | null = null;
  hostKeyFingerprint: string | null = null;
  connectedAt: number | null = null;
  needsPerson = false;
  rememberedSecret = false;
  /** Session channels open now (MaxSessions counts these; forwarded channels do not). */
  sessionChannels = 0;
  /** The server refused a session channel on this connection at this many open sessions. */
  refusedAt: number | null = null;
  /** Session channels asked for and not yet answered, by ticket: they take room too. */
  private readonly opening = new Set<number>();
  private nextTicket = 0;

  /** Sessions open or being opened: what MaxSessions must leave room for. */
  get sessionsInUse(): number {
    // The channel opened ahead of need (open or on its way) is room, not use: the next session takes it.
    return this.sessionChannels + this.opening.size - this.spareChannels - (this.spareOpening ? 1 : 0);
  }

  private client: Client | null = null;
  private closing = false;

  constructor(private readonly opts: ConnectionOptions) {
    super();
  }

  /** Connects and authenticates; rejects with a HitchError that says what went wrong. */
  async connect(): Promise<void> {
    const { host, timing } = this.opts;
    // The host's ConnectTimeout, as ssh honours it; Hitch's default when the config sets none.
    const connectTimeoutMs = host.connectTimeoutSeconds ? host.connectTimeoutSeconds * 1000 : timing.connectTimeoutMs;
    const started = Date.now();
    const transport = await this.openTransportWithin(connectTimeoutMs);
    // One timeout for the whole connect: the handshake gets what the transport left of it.
    await this.handshake(transport, Math.max(1000, connectTimeoutMs - (Date.now() - started)));
  }

  /** A transport to the server within the connect timeout; one that arrives later is closed. */
  private openTransportWithin(timeoutMs: number): Promise<Duplex> {
    const { host } = this.opts;
    return withTimeout(
      this.opts.openTransport(),
      timeoutMs,
      () => new HitchError('timeout', `Connection to ${host.hostname} port ${host.port} timed out after ${timeoutMs / 1000} s.`),
      (late) => late.destroy(),
    );
  }

  /**
   * The SSH handshake, host key check and authentication over the transport. Until the client
   * is ready, an error, a close or the deadline fails the connect; after, they are the open
   * connection's.
   */
  private handshake(transport: Duplex, timeoutMs: number): Promise<void> {
    const { host } = this.opts;
    const client = new Client();
    const outcome = new AuthOutcome();
    const hostKey: HostKeyCheck = { verdict: null, ok: false, declined: false, error: null };
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      // Our own deadline instead of ssh2's readyTimeout, so that it stops while a person types.
      const deadline = new ConnectDeadline(timeoutMs, () => fail(new HitchError('timeout', `${host.hostname} port ${host.port} did not complete the SSH handshake in time.`)));
      const fail = (err: HitchError): void => {
        if (settled) return;
        settled = true;
        deadline.stop();
        this.opts.prompter.cancelFor(this.opts.masterId);
        client.end();
        transport.destroy();
        this.setState('closed');
        reject(err);
      };
      deadline.start();

      client.on('handshake', () => this.setState('authenticating'));
      client.on('ready', () => {
        settled = true;
        deadline.stop();
        this.becomeReady(client, transport, outcome);
        resolve();
      });
      client.on('error', (err: Error & { level?: string }) => {
        if (!settled) fail(this.setupFailure(err, hostKey, outcome));
        else this.noteConnectionError(err);
      });
      // Forwards from the server (ssh -R) go to whoever set them up; unclaimed ones are refused.
      client.on('tcp connection', (info: ForwardedConnectionInfo, accept: () => ClientChannel, reject: () => void) => {
        if (this.onForwardedConnection) this.onForwardedConnection(info, accept, reject);
        else reject();
      });
      client.on('close', () => {
        if (!settled) fail(hostKey.error ?? new HitchError('network', `${host.hostname} port ${host.port} closed the connection during setup.`));
        else this.connectionClosed(client);
      });

      coalesceWrites(transport);
      client.connect({
        sock: transport as unknown as Socket,
        username: host.user,
        readyTimeout: 0,
        keepaliveInterval: 0, // our own keepalive (below) also measures the round trip
        hostVerifier: this.hostVerifier(hostKey, deadline),
        authHandler: createAuthHandler(
          { ...this.opts, pauseTimeout: (paused) => deadline.pause(paused), interactive: this.opts.interactive },
          outcome,
        ) as never,
      });
      answerServerDebug(client);
      signKeysAtOnce(client);
    });
  }

  /** Authenticated: the client becomes this connection's, with what authentication found. */
  private becomeReady(client: Client, transport: Duplex, outcome: AuthOutcome): void {
    this.client = client;
    this.connectedAt = Date.now();
    // A key accepted "once" stays accepted for this run, so it never needs the person again.
    this.needsPerson = outcome.needsPerson;
    this.rememberedSecret = outcome.rememberedSecret;
    const final = outcome.current ?? 'none';
    this.authMethod = [...outcome.succeeded, final].join('+');
    this.transport = transport;
    this.startKeepalive(client, transport);
    this.setState('ready');
    void this.storeSecrets(outcome);
    this.refillSpare();
  }

  /**
   * ssh2's hostVerifier: checks the offered key against known_hosts (an unknown one goes to the
   * config or the person) while the deadline is paused, and records in `check` what it found.
   */
  private hostVerifier(check: HostKeyCheck, deadline: ConnectDeadline): (key: Buffer, verify: (ok: boolean) => void) => void {
    return (key, verify) => {
      deadline.pause(true);
      // One catch for the check and the confirmation alike: saving an accepted key can fail
      // too (a full disk), and must refuse the connection rather than reject unhandled.
      let decided = false;
      this.checkHostKey(key)
        .then(async (v) => {
          check.verdict = v;
          check.ok = v.status === 'known' || (v.status === 'unknown' && (await this.confirmUnknownKey(key, v)));
          check.declined = !check.ok && v.status === 'unknown' && this.opts.interactive && this.opts.host.strictHostKeyChecking !== 'yes';
          if (check.ok) this.hostKeyFingerprint = fingerprint(key);
          decided = true;
          verify(check.ok);
        })
        .catch((err: unknown) => {
          this.opts.log.error('host key check failed', { master: this.opts.masterId, error: String(err) });
          check.ok = false;
          check.error = toHitchError(err);
          if (!decided) verify(false);
        })
        .finally(() => deadline.pause(false));
    };
  }

  /** Why the connect failed: what we already know (cancelled, host key), else what the error says. */
  private setupFailure(err: Error & { level?: string }, hostKey: HostKeyCheck, outcome: AuthOutcome): HitchError {
    const { host } = this.opts;
    if (err.level === 'client-authentication' && outcome.cancelled) return new HitchError('cancelled', `Login to ${host.alias} cancelled.`);
    if (hostKey.error) return hostKey.error;
    if (hostKey.declined) {
      return new HitchError('host-key-unknown', `You did not accept the host key of ${host.hostKeyAlias ?? host.hostname}; Hitch did not connect.`);
    }
    return this.describeFailure(err, hostKey.ok ? null : hostKey.verdict, outcome);
  }

  /** An error on the open connection: kept to say why it closed, since 'close' follows. */
  private noteConnectionError(err: Error & { level?: string }): void {
    const { host } = this.opts;
    this.opts.log.warn('connection error', { master: this.opts.masterId, errorLevel: err.level, error: err.message });
    this.lastError = err.level === 'client-socket' ? socketError(err as NodeJS.ErrnoException, host) : describeDrop(err, host);
  }

  /** The open connection ended: closed by us (no error reported), or lost. */
  private connectionClosed(client: Client): void {
    if (this.client !== client) return;
    this.client = null;
    this.connectedAt = null;
    this.setState('closed');
    this.emit('closed', this.closing ? null : (this.lastError ?? new HitchError('network', `The connection to ${this.opts.host.alias} was lost.`)));
  }

  private lastError: HitchError | null = null;
  private transport: Duplex | null = null;
  /** The last keepalive's round trip, in ms. */
  latencyMs: number | null = null;

  /** Bytes received from the server on this connection, encrypted, as on the wire. */
  get bytesIn(): number {
    return this.transport instanceof Socket ? this.transport.bytesRead : 0;
  }

  /** Bytes sent; null through a jump host, whose channel does not count them. */
  get bytesOut(): number | null {
    return this.transport instanceof Socket ? this.transport.bytesWritten : null;
  }

  /**
   * Keepalives like OpenSSH's ServerAliveInterval/CountMax: one every interval; after that
   * many intervals without an answer the connection is taken for dead. Each answer's round
   * trip is the master's latency.
   */
  private startKeepalive(client: Client, transport: Duplex): void {
    const { keepaliveIntervalMs: every, keepaliveCountMax: max } = this.opts.timing;
    if (every <= 0) return;
    let waiting = false;
    let missed = 0;
    const timer = setInterval(() => {
      if (waiting) {
        if (++missed < max) return;
        clearInterval(timer);
        this.lastError = new HitchError('timeout', `${this.opts.host.alias} stopped answering keepalives: the network or the server is gone.`);
        abandon(transport);
        return;
      }
      waiting = true;
      const started = performance.now();
      ping(client).then(() => {
        waiting = false;
        missed = 0;
        this.latencyMs = Math.round((performance.now() - started) * 10) / 10;
        this.emit('state');
      });
    }, every);
    client.once('close', () => clearInterval(timer));
  }

  /**
   * Asks the server for an answer now, instead of waiting for the next keepalive (after the
   * computer woke, or the network changed: a connection often looks alive until a write
   * fails). No answer within `deadlineMs`: the connection is taken for dead and closed, and
   * the master reconnects. Resolves with whether it answered.
   */
  probe(deadlineMs: number): Promise<boolean> {
    const client = this.client;
    const transport = this.transport;
    if (!client || !transport || this.state !== 'ready') return Promise.resolve(false);
    return new Promise((resolve) => {
      // Bytes read in the probe's first half may have left the server before the network
      // died (they sat in this computer's socket buffer): only bytes read after the half count.
      let bytesAtHalf = Number.POSITIVE_INFINITY;
      const half = setTimeout(() => (bytesAtHalf = this.bytesIn), deadlineMs / 2);
      const timer = setTimeout(() => {
        // Reads waiting behind a busy event loop come first (timers run before reads, so both
        // timers fire before a late read); and any byte from the server in the second half
        // says it is alive: the answer may be queued behind bulk data.
        setImmediate(() => {
          if (transport instanceof Socket && this.bytesIn > bytesAtHalf) return resolve(true);
          this.lastError = new HitchError('timeout', `${this.opts.host.alias} did not answer after the computer woke or the network changed.`);
          abandon(transport);
          resolve(false);
        });
      }, deadlineMs);
      const started = performance.now();
      ping(client).then(() => {
        clearTimeout(half);
        clearTimeout(timer);
        this.latencyMs = Math.round((performance.now() - started) * 10) / 10;
        resolve(true);
      });
    });
  }

  private setState(state: MasterConnection['state']): void {
    this.state = state;
    this.emit('state');
  }

  private async storeSecrets(outcome: AuthOutcome): Promise<void> {
    for (const { account, secret } of outcome.toRemember) {
      try {
        await this.opts.secrets.set(account, secret);
        this.rememberedSecret = true;
      } catch (err) {
        this.needsPerson = true; // not remembered after all: logging in again needs the person
        this.opts.log.warn('could not remember a secret', { master: this.opts.masterId, account, error: (err as Error).message });
      }
    }
    if (outcome.toRemember.length) this.emit('state');
  }

  private knownHostsName(): string {
    return this.opts.host.hostKeyAlias ?? this.opts.host.hostname;
  }

  private async checkHostKey(key: Buffer): Promise<HostKeyVerdict> {
    const { host } = this.opts;
    const files = [...host.userKnownHostsFiles, ...host.globalKnownHostsFiles, this.opts.hitchKnownHosts].map(expandHome);
    const verdict = verifyHostKey(await readKnownHosts(files), this.knownHostsName(), host.port, key);
    if (verdict.status === 'unknown' && this.opts.acceptedOnce.has(`${this.knownHostsName()} ${host.port} ${verdict.fingerprint}`)) {
      return { status: 'known', file: '(accepted for this run)', line: 0 };
    }
    return verdict;
  }

  /** Unknown key: StrictHostKeyChecking decides, or the person does. */
  private async confirmUnknownKey(key: Buffer, verdict: Extract<HostKeyVerdict, { status: 'unknown' }>): Promise<boolean> {
    const { host } = this.opts;
    const name = this.knownHostsName();
    const record = (): Promise<void> => addKnownHost(this.opts.hitchKnownHosts, name, host.port, key);
    if (host.strictHostKeyChecking === 'yes') return false;
    if (host.strictHostKeyChecking === 'accept-new' || host.strictHostKeyChecking === 'no') {
      await record();
      return true;
    }
    if (!this.opts.interactive) return false;
    const others = verdict.otherTypesKnown.length ? `\nknown_hosts has only ${verdict.otherTypesKnown.join(', ')} keys for this host.` : '';
    const answer = await this.opts.prompter.ask({
      masterId: this.opts.masterId,
      kind: 'host-key',
      title: `Unknown host key for ${name}`,
      message:
        `The authenticity of host '${name}' (port ${host.port}) can't be established.\n` +
        `${keyTypeOf(key)} key fingerprint is ${verdict.fingerprint}.${others}\n` +
        'Accept it only if you can check this fingerprint with the server’s administrator.',
      fields: [],
      canRemember: false,
    });
    if (!answer || answer.choice === null) return false;
    if (answer.choice === 'always') await record();
    else this.opts.acceptedOnce.add(`${name} ${host.port} ${verdict.fingerprint}`);
    return true;
  }

  private describeFailure(err: Error & { level?: string }, verdict: HostKeyVerdict | null, outcome: AuthOutcome): HitchError {
    const { host } = this.opts;
    const name = this.knownHostsName();
    if (verdict?.status === 'changed') {
      const expected = verdict.expected.map((e) => `${e.fingerprint} (${e.file}:${e.line})`).join(', ');
      return new HitchError(
        'host-key-changed',
        `WARNING: the host key of ${name} port ${host.port} has CHANGED. It offered ${verdict.keyType} ${verdict.fingerprint}, ` +
          `but known_hosts has ${expected}. Someone may be intercepting the connection; Hitch refused to connect.`,
      );
    }
    if (verdict?.status === 'revoked') {
      return new HitchError(
        'host-key-revoked',
        `The host key of ${name} (${verdict.fingerprint}) is marked @revoked in ${verdict.file}:${verdict.line}; Hitch refused to connect.`,
      );
    }
    if (verdict?.status === 'unknown') {
      const others = verdict.otherTypesKnown.length ? ` (known_hosts has only ${verdict.otherTypesKnown.join(', ')} keys for it)` : '';
      return new HitchError(
        'host-key-unknown',
        `The host key of ${name} port ${host.port} is not known${others}: ${verdict.keyType} ${verdict.fingerprint}. ` +
          `Verify it with the server's administrator, then accept it when Hitch asks.`,
      );
    }
    if (err.level === 'client-authentication') {
      const methods = outcome.tried.length ? [...new Set(outcome.tried)].join(', ') : 'none available';
      const notes = outcome.notes.length ? `; ${outcome.notes.join('; ')}` : '';
      const person = this.opts.interactive ? '' : ' Logging in needs a person: use Connect.';
      return new HitchError(
        'auth',
        `Authentication failed for ${host.user}@${host.hostname}: the server refused every method tried (${methods})${notes}.${person}`,
      );
    }
    if (err.level === 'client-socket') return socketError(err as NodeJS.ErrnoException, host);
    return new HitchError('network', `SSH connection to ${host.hostname} port ${host.port} failed: ${err.message}`);
  }

  /** Opens a session channel (shell or exec) on this connection: no new authentication. */
  async openSession(request: SessionRequest, options: { useSpare?: boolean; internal?: boolean } = {}): Promise<ClientChannel> {
    // Hitch's own are counted as such from the moment they are taken, not once their requests
    // are answered: a view taken meanwhile would show them as the person's sessions.
    const spare = options.useSpare !== false ? this.takeSpare() : null;
    if (spare && options.internal) this.countAsInternal(spare);
    const channel = spare ?? (await this.openChannel('session', options.internal));
    try {
      // Pipelined like OpenSSH does: pty and command go out together, answered in order.
      if (request.kind === 'custom') {
        await request.setup(channel);
      } else {
        const requests: Promise<void>[] = [];
        const pty = request.kind === 'shell' ? { cols: request.cols, rows: request.rows } : request.pty;
        if (pty) requests.push(requestPty(channel, { term: 'xterm-256color', ...pty }));
        requests.push(request.kind === 'shell' ? requestShell(channel) : requestExec(channel, request.command));
        if (request.kind === 'exec' && request.pipelined) void Promise.all(requests).catch(() => channel.close());
        else await Promise.all(requests);
      }
    } catch (err) {
      channel.close();
      throw new HitchError('channel', `${this.opts.host.alias} refused the session: ${(err as Error).message}`);
    } finally {
      this.refillSpare();
    }
    return channel;
  }

  /** A session channel with no purpose yet, counted against MaxSessions from the moment it opens. */
  private openChannel(as: 'session' | 'sftp' = 'session', internal = false): Promise<ClientChannel> {
    const client = this.requireClient();
    const ticket = this.nextTicket++;
    this.opening.add(ticket);
    const settle = (): number => {
      // sshd answers channel opens in order: earlier ones still unanswered here were accepted.
      const acceptedBefore = [...this.opening].filter((t) => t < ticket).length;
      this.opening.delete(ticket);
      return acceptedBefore;
    };
    return openBareSession(client, as).then(
      (channel) => {
        settle();
        this.sessionChannels++;
        channel.once('close', () => this.sessionChannels--);
        if (internal) this.countAsInternal(channel);
        return channel;
      },
      (err: Error & { reason?: number }) => {
        const acceptedBefore = settle();
        const error = this.channelError(err);
        if (error.code === 'max-sessions') this.refusedAt = this.sessionChannels + acceptedBefore;
        throw error;
      },
    );
  }

  /** The channel opened ahead of need, if one is ready. */
  private spare: ClientChannel | null = null;
  private spareOpening = false;

  /** Channels held open ahead of need (0 or 1): they take a MaxSessions slot, and are the next session. */
  get spareChannels(): number {
    return this.spare ? 1 : 0;
  }

  /** Resolves once a spare channel is open (false if none is coming: disabled, no room, closed). */
  async waitForSpare(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.spare && Date.now() < deadline) {
      if (!this.spareOpening) this.refillSpare();
      if (!this.spareOpening) return false;
      await new Promise((r) => setTimeout(r, 2));
    }
    return this.spare !== null;
  }

  private takeSpare(): ClientChannel | null {
    const spare = this.spare;
    this.spare = null;
    return spare;
  }

  /** Opens the next session's channel now, so that it costs one round trip less. */
  private refillSpare(): void {
    if (!this.opts.spareChannel || this.spare || this.spareOpening || this.state !== 'ready' || this.closing) return;
    if (this.refusedAt !== null && this.sessionsInUse >= this.refusedAt) return; // no room to spare
    this.spareOpening = true;
    this.openChannel().then(
      (channel) => {
        this.spareOpening = false;
        if (this.closing || this.state !== 'ready') return channel.close();
        this.spare = channel;
        channel.once('close', () => {
          if (this.spare === channel) this.spare = null;
        });
      },
      () => (this.spareOpening = false), // refused (MaxSessions) or closing: sessions open on demand
    );
  }

  /** Channels of this connection Hitch uses itself (the process monitor, listing durable shells), not a person's sessions. */
  monitorChannels = 0;
  /** Of those, SFTP sessions (files and transfers): their connection stays while transfers run (HostMaster.release). */
  sftpChannels = 0;

  /**
   * A shell without a pty for the process monitor; it takes a MaxSessions slot like any
   * session, but only a free one: once the server's limit is known and the person's sessions
   * take every slot, it is refused here (code `max-sessions`) without asking the server.
   */
  openMonitor(): Promise<ClientChannel> {
    if (this.refusedAt !== null && this.sessionsInUse >= this.refusedAt) {
      return Promise.reject(
        new HitchError(
          'max-sessions',
          `${this.opts.host.alias} allows ${this.refusedAt} sessions per connection (MaxSessions) and sessions take all of this one's; ` +
            'the process monitor waits for one to close.',
        ),
      );
    }
    return this.openInternal('sh');
  }

  /** Hitch's own channels that give their slot up to a person's session (the process monitor). */
  private readonly yielders = new Set<() => Promise<boolean>>();

  /**
   * Registers a channel of Hitch's own as one that gives its MaxSessions slot up when the
   * person needs it: `giveUp` closes it and resolves true once the slot is free, or resolves
   * false when it cannot now (busy).
   */
  yieldsSlot(channel: ClientChannel, giveUp: () => Promise<boolean>): void {
    this.yielders.add(giveUp);
    channel.once('close', () => this.yielders.delete(giveUp));
  }

  /** Frees a slot one of Hitch's own channels holds, for a person's session; false if none can. */
  async reclaimSlot(): Promise<boolean> {
    for (const giveUp of [...this.yielders]) if (await giveUp()) return true;
    return false;
  }

  /** An exec channel of Hitch's own (a fixed command): not counted among the person's sessions. */
  openInternal(command: string): Promise<ClientChannel> {
    return this.openSession({ kind: 'exec', command, pty: null }, { internal: true });
  }

  private countAsInternal(channel: ClientChannel): void {
    this.monitorChannels++;
    channel.once('close', () => this.monitorChannels--);
  }

  /**
   * An SFTP session of Hitch's own (the file browser and transfers): a session channel with
   * the `sftp` subsystem, counted against MaxSessions like the process monitor, and like it
   * not among the person's sessions. ssh2's `client.sftp()` would open the channel outside the
   * counts above. Rejects with code `sftp` when the server has no SFTP subsystem.
   */
  async openSftp(): Promise<SFTPWrapper> {
    const channel = await this.openChannel('sftp', true);
    this.sftpChannels++;
    channel.once('close', () => this.sftpChannels--);
    const sftp = channel as unknown as SFTPWrapper & { _init(): void };
    try {
      await requestSubsystem(channel, 'sftp');
      await new Promise<void>((resolve, reject) => {
        const failed = (why: string) => (): void => reject(new Error(why));
        sftp.once('ready', () => resolve());
        sftp.once('error', (err: Error) => reject(err));
        sftp.once('close', failed('the SFTP server ended as it started'));
        sftp._init();
      });
    } catch (err) {
      sftp.end(); // SFTP's close() closes a file handle: end() closes the channel
      throw new HitchError('sftp', `${this.opts.host.alias} offers no SFTP server (${(err as Error).message}): files and transfers need its sftp subsystem.`);
    }
    return sftp;
  }

  /** The server's software version, e.g. `OpenSSH_9.2p1`, from its identification string. */
  get serverSoftware(): string {
    // ssh2 keeps it on the client without a public accessor.
    return String((this.client as unknown as { _remoteVer?: string } | null)?._remoteVer ?? '');
  }

  /**
   * Whether sshd delivers the SSH "signal" channel request here: OpenSSH 7.9 and later, and
   * before 10.0 not for root logins ("session signalling requires privilege separation").
   */
  honoursSessionSignals(remoteUid: number): boolean {
    const m = /^OpenSSH_(\d+)\.(\d+)/.exec(this.serverSoftware);
    if (!m) return false;
    const version = Number(m[1]) + Number(m[2]) / 100;
    return version >= 7.09 && (remoteUid !== 0 || version >= 10);
  }

  /** A direct-tcpip channel to host:port as seen from the server: how ProxyJump reaches the next hop. */
  forwardOut(hostname: string, port: number): Promise<ClientChannel> {
    const client = this.requireClient();
    return new Promise((resolve, reject) => {
      client.forwardOut('127.0.0.1', 0, hostname, port, (err, channel) => {
        if (err) {
          const reason = (err as Error & { reason?: number }).reason;
          reject(
            new HitchError(
              reason === OPEN_CONNECT_FAILED ? 'refused' : 'channel',
              `${this.opts.host.alias} could not connect onward to ${hostname} port ${port}: ${err.message}`,
            ),
          );
          return;
        }
        resolve(channel);
      });
    });
  }

  /** Receives the connections of remote forwards (ssh -R); without it they are refused. */
  onForwardedConnection: ((info: ForwardedConnectionInfo, accept: () => ClientChannel, reject: () => void) => void) | null = null;

  /** Asks the server to listen on bindAddr:port (0: any port) and forward to us; resolves with the port. */
  forwardIn(bindAddr: string, port: number): Promise<number> {
    const client = this.requireClient();
    return new Promise((resolve, reject) => {
      client.forwardIn(bindAddr, port, (err, bound) => (err ? reject(new HitchError('channel', `${this.opts.host.alias} refused to listen on ${bindAddr || '*'}:${port}: ${err.message}`)) : resolve(bound)));
    });
  }

  unforwardIn(bindAddr: string, port: number): Promise<void> {
    const client = this.requireClient();
    return new Promise((resolve, reject) => {
      client.unforwardIn(bindAddr, port, (err) => (err ? reject(err) : resolve()));
    });
  }

  private requireClient(): Client {
    if (!this.client || this.state !== 'ready') throw new HitchError('not-connected', `${this.opts.masterId} is not connected.`);
    return this.client;
  }

  private channelError(err: Error & { reason?: number }): HitchError {
    // sshd answers a session past MaxSessions with "open failed" and reason 2 or 1.
    if (err.reason === OPEN_CONNECT_FAILED || err.reason === OPEN_ADMINISTRATIVELY_PROHIBITED) {
      return new HitchError('max-sessions', `${this.opts.host.alias} refused another session on this connection (MaxSessions).`);
    }
    return new HitchError('channel', `${this.opts.host.alias} refused a session: ${err.message}`);
  }

  /** Closes the connection and every channel on it; no 'closed' error is reported. */
  close(): void {
    this.closing = true;
    this.client?.end();
  }
}

function describeDrop(err: Error & { level?: string }, host: ResolvedHost): HitchError {
  if (/keepalive/i.test(err.message)) {
    return new HitchError('timeout', `${host.alias} stopped answering keepalives: the network or the server is gone.`);
  }
  return new HitchError('network', `The connection to ${host.alias} failed: ${err.message}`);
}

/** Rejects after `ms`; a value that arrives too late is handed to `discard`. */
function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error, discard: (late: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(error());
    }, ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        if (timedOut) discard(v);
        else resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * The connect timeout for the handshake and authentication: our own timer instead of ssh2's
 * readyTimeout, so that it can pause while a person is asked something and go on after.
 */
class ConnectDeadline {
  private timer: NodeJS.Timeout | null = null;
  private runningSince = 0;
  /** Setup is over (ready or failed): the deadline neither runs nor restarts. */
  private stopped = false;

  constructor(
    private remainingMs: number,
    private readonly expired: () => void,
  ) {}

  start(): void {
    this.runningSince = Date.now();
    this.timer = setTimeout(this.expired, this.remainingMs);
  }

  /** Paused, the time left is kept (at least a second), to run on when unpaused. */
  pause(paused: boolean): void {
    if (paused && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      this.remainingMs = Math.max(1000, this.remainingMs - (Date.now() - this.runningSince));
    } else if (!paused && !this.timer && !this.stopped) {
      this.start();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

/**
 * Closes a connection taken for dead. A TCP socket is reset rather than closed: the kernel
 * then drops what it had not yet delivered, instead of retrying it for minutes. Keys a
 * durable shell sent into a stalled network must never reach the host late, after its next
 * carrier has sent them again (DurableShell.write). Through a jump host, what already passed
 * the first hop can still arrive late, and run twice.
 */
function abandon(transport: Duplex): void {
  if (transport instanceof Socket) {
    try {
      transport.resetAndDestroy();
      return;
    } catch {
      // not TCP (a pipe to a proxy command): closed as any stream
    }
  }
  transport.destroy();
}

// One authenticated SSH connection to a host, shared by every session opened on it: what
// OpenSSH calls a ControlMaster. It owns the ssh2 Client, verifies the host key, picks the
// authentication methods from the resolved host settings and reports its state.
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { Client, utils, type AnyAuthMethod, type ClientChannel, type NextAuthHandler } from 'ssh2';
import type { MasterState, MasterView } from '../../preload/api';
import { HitchError, type ErrorCode } from './errors';
import { fingerprint, readKnownHosts, verifyHostKey, type HostKeyVerdict } from './known-hosts';
import type { Logger } from './log';
import type { ResolvedHost } from './ssh-config';

export interface MasterOptions {
  host: ResolvedHost;
  /** Hitch's own known_hosts, consulted after the host's UserKnownHostsFile and GlobalKnownHostsFile. */
  hitchKnownHosts: string;
  log: Logger;
  /** The environment's SSH_AUTH_SOCK, used unless IdentityAgent says otherwise. */
  authSock: string | undefined;
}

export interface ShellSize {
  cols: number;
  rows: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;
const KEEPALIVE_INTERVAL_MS = 15_000;
const KEEPALIVE_COUNT_MAX = 3;

function expandHome(p: string): string {
  return p.startsWith('~/') ? join(userInfo().homedir, p.slice(2)) : p;
}

/** Turns a socket-level failure into a sentence about the host, not about Node. */
function socketError(err: NodeJS.ErrnoException, host: ResolvedHost): HitchError {
  const where = `${host.hostname} port ${host.port}`;
  const byCode: Record<string, [ErrorCode, string]> = {
    ENOTFOUND: ['dns', `Cannot resolve host name "${host.hostname}" (host ${host.alias}).`],
    EAI_AGAIN: ['dns', `Cannot resolve host name "${host.hostname}" right now: the name server did not answer.`],
    ECONNREFUSED: ['refused', `Connection refused by ${where}: no SSH server is listening there.`],
    ETIMEDOUT: ['timeout', `Connection to ${where} timed out.`],
    EHOSTUNREACH: ['network', `No route to ${where}.`],
    ENETUNREACH: ['network', `Network unreachable for ${where}.`],
    ECONNRESET: ['network', `Connection to ${where} was reset.`],
  };
  const known = err.code ? byCode[err.code] : undefined;
  if (known) return new HitchError(known[0], known[1], { cause: err });
  return new HitchError('network', `Connection to ${where} failed: ${err.message}`, { cause: err });
}

export class MasterConnection extends EventEmitter<{ changed: []; closed: [] }> {
  state: MasterState = 'closed';
  error: HitchError | null = null;
  authMethod: string | null = null;
  hostKeyFingerprint: string | null = null;
  connectedAt: number | null = null;
  sessions = 0;

  private client: Client | null = null;
  private connecting: Promise<void> | null = null;

  constructor(private readonly opts: MasterOptions) {
    super();
  }

  get hostId(): string {
    return this.opts.host.alias;
  }

  view(): MasterView {
    return {
      hostId: this.hostId,
      state: this.state,
      error: this.error ? this.error.toInfo() : null,
      authMethod: this.authMethod,
      hostKeyFingerprint: this.hostKeyFingerprint,
      connectedAt: this.connectedAt,
      sessions: this.sessions,
    };
  }

  /** Connects and authenticates; concurrent callers share one attempt. */
  connect(): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    this.connecting ??= this.attempt().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private setState(state: MasterState, error: HitchError | null = null): void {
    this.state = state;
    this.error = error;
    this.emit('changed');
  }

  private attempt(): Promise<void> {
    const { host, log } = this.opts;
    this.authMethod = null;
    this.hostKeyFingerprint = null;
    this.setState('connecting');
    log.info('master connecting', { host: host.alias, hostname: host.hostname, port: host.port });

    return new Promise<void>((resolve, reject) => {
      const client = new Client();
      let hostKeyVerdict: HostKeyVerdict | null = null;
      let settled = false;
      let triedAuth: string[] = [];
      const timeoutMs = host.connectTimeoutSeconds ? host.connectTimeoutSeconds * 1000 : DEFAULT_CONNECT_TIMEOUT_MS;

      const fail = (err: HitchError): void => {
        if (settled) return;
        settled = true;
        log.warn('master failed', { host: host.alias, code: err.code, error: err.message });
        client.end();
        sock.destroy();
        this.client = null;
        this.setState('failed', err);
        reject(err);
      };

      // Our own socket so TCP_NODELAY is set before the first byte: without it every
      // exchange waits ~40 ms for a delayed ACK (see DESIGN.md).
      const sock: Socket = tcpConnect({ host: host.hostname, port: host.port });
      sock.setNoDelay(true);
      const tcpTimer = setTimeout(
        () => fail(new HitchError('timeout', `Connection to ${host.hostname} port ${host.port} timed out after ${timeoutMs / 1000} s.`)),
        timeoutMs,
      );
      sock.once('error', (err) => fail(socketError(err, host)));
      sock.once('connect', () => {
        clearTimeout(tcpTimer);
        client.connect({
          sock,
          username: host.user,
          readyTimeout: timeoutMs,
          keepaliveInterval: KEEPALIVE_INTERVAL_MS,
          keepaliveCountMax: KEEPALIVE_COUNT_MAX,
          hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
            this.checkHostKey(key).then(
              (verdict) => {
                hostKeyVerdict = verdict;
                if (verdict.status === 'known') this.hostKeyFingerprint = fingerprint(key);
                verify(verdict.status === 'known');
              },
              () => verify(false),
            );
          },
          authHandler: this.authHandler((tried) => (triedAuth = tried)),
        });
      });

      client.on('handshake', () => this.setState('authenticating'));
      client.on('ready', () => {
        settled = true;
        this.client = client;
        this.connectedAt = Date.now();
        log.info('master ready', { host: host.alias, auth: this.authMethod });
        this.setState('ready');
        resolve();
      });
      client.on('error', (err: Error & { level?: string }) => {
        if (!settled) {
          fail(this.describeFailure(err, hostKeyVerdict, triedAuth));
          return;
        }
        log.warn('master error', { host: host.alias, level: err.level, error: err.message });
        this.error = err.level === 'client-socket' ? socketError(err as NodeJS.ErrnoException, host) : new HitchError('network', err.message);
      });
      client.on('close', () => {
        clearTimeout(tcpTimer);
        if (!settled) {
          fail(new HitchError('network', `${host.hostname} port ${host.port} closed the connection during setup.`));
          return;
        }
        if (this.client !== client) return;
        this.client = null;
        this.connectedAt = null;
        log.info('master closed', { host: host.alias });
        this.setState(this.error ? 'failed' : 'closed', this.error);
        this.emit('closed');
      });
    });
  }

  private async checkHostKey(key: Buffer): Promise<HostKeyVerdict> {
    const { host } = this.opts;
    const files = [...host.userKnownHostsFiles, ...host.globalKnownHostsFiles, this.opts.hitchKnownHosts].map(expandHome);
    const lines = await readKnownHosts(files);
    return verifyHostKey(lines, host.hostKeyAlias ?? host.hostname, host.port, key);
  }

  private describeFailure(err: Error & { level?: string }, verdict: HostKeyVerdict | null, tried: string[]): HitchError {
    const { host } = this.opts;
    const name = host.hostKeyAlias ?? host.hostname;
    if (verdict && verdict.status === 'changed') {
      const expected = verdict.expected.map((e) => `${e.fingerprint} (${e.file}:${e.line})`).join(', ');
      return new HitchError(
        'host-key-changed',
        `WARNING: the host key of ${name} port ${host.port} has CHANGED. It offered ${verdict.keyType} ${verdict.fingerprint}, ` +
          `but known_hosts has ${expected}. Someone may be intercepting the connection; Hitch refused to connect.`,
      );
    }
    if (verdict && verdict.status === 'revoked') {
      return new HitchError(
        'host-key-revoked',
        `The host key of ${name} (${verdict.fingerprint}) is marked @revoked in ${verdict.file}:${verdict.line}; Hitch refused to connect.`,
      );
    }
    if (verdict && verdict.status === 'unknown') {
      const others = verdict.otherTypesKnown.length ? ` (known_hosts has only ${verdict.otherTypesKnown.join(', ')} keys for it)` : '';
      return new HitchError(
        'host-key-unknown',
        `The host key of ${name} port ${host.port} is not known${others}: ${verdict.keyType} ${verdict.fingerprint}. ` +
          `Verify it with the server's administrator, then add it to known_hosts (for example by connecting once with ssh).`,
      );
    }
    if (err.level === 'client-authentication') {
      const methods = tried.length ? tried.join(', ') : 'none available';
      return new HitchError(
        'auth',
        `Authentication failed for ${host.user}@${host.hostname}: the server refused every method tried (${methods}).`,
      );
    }
    if (err.level === 'client-timeout') {
      return new HitchError('timeout', `${host.hostname} port ${host.port} did not complete the SSH handshake in time.`);
    }
    if (err.level === 'client-socket') return socketError(err as NodeJS.ErrnoException, host);
    return new HitchError('network', `SSH connection to ${host.hostname} port ${host.port} failed: ${err.message}`);
  }

  /**
   * Offers the agent first, then each IdentityFile that exists and needs no passphrase, in
   * the order `ssh -G` lists them. `onTried` learns what was offered for the error message.
   */
  private authHandler(onTried: (tried: string[]) => void) {
    const { host, log } = this.opts;
    const tried: string[] = [];
    let queue: (() => Promise<AnyAuthMethod | null>)[] | null = null;

    const agentPath = (): string | undefined => {
      const agent = host.identityAgent;
      if (agent === 'none') return undefined;
      if (agent === null || agent === 'SSH_AUTH_SOCK') return this.opts.authSock || undefined;
      return expandHome(agent);
    };

    const build = (): (() => Promise<AnyAuthMethod | null>)[] => {
      const steps: (() => Promise<AnyAuthMethod | null>)[] = [];
      const agent = agentPath();
      if (agent) steps.push(async () => ({ type: 'agent', username: host.user, agent }));
      for (const file of host.identityFiles.map(expandHome)) {
        steps.push(async () => {
          const data = await readFile(file).catch(() => null);
          if (!data) return null;
          const parsed = utils.parseKey(data);
          if (parsed instanceof Error) {
            log.info('identity file skipped', { host: host.alias, file, reason: parsed.message });
            return null;
          }
          return { type: 'publickey', username: host.user, key: data };
        });
      }
      return steps;
    };

    return (_methodsLeft: unknown, _partial: unknown, next: NextAuthHandler): void => {
      queue ??= build();
      const advance = async (): Promise<void> => {
        while (queue!.length > 0) {
          const method = await queue!.shift()!();
          if (!method) continue;
          const label = method.type === 'publickey' ? `publickey` : method.type;
          tried.push(label);
          onTried([...new Set(tried)]);
          this.authMethod = label;
          next(method);
          return;
        }
        this.authMethod = null;
        (next as unknown as (m: false) => void)(false); // ssh2: false ends authentication
      };
      void advance();
    };
  }

  /** Opens an interactive shell with a pty on this connection: no new authentication. */
  openShell(size: ShellSize): Promise<ClientChannel> {
    const client = this.client;
    if (!client || this.state !== 'ready') {
      return Promise.reject(new HitchError('not-connected', `${this.hostId} is not connected.`));
    }
    return new Promise((resolve, reject) => {
      client.shell({ term: 'xterm-256color', cols: size.cols, rows: size.rows }, (err, channel) => {
        if (err) {
          const reason = (err as Error & { reason?: number }).reason;
          reject(
            reason === 2
              ? new HitchError('channel', `${this.hostId} refused another session: the server's MaxSessions limit is reached.`)
              : new HitchError('channel', `${this.hostId} refused a session: ${err.message}`),
          );
          return;
        }
        resolve(channel);
      });
    });
  }

  /** Closes the connection and every session on it. */
  close(): void {
    this.client?.end();
  }
}

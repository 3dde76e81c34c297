// MUX_C_PROXY (`ssh -O proxy`): the stock client stops speaking the mux protocol and becomes an
// SSH client of its own whose connection-protocol packets (proxy-packets.ts) come over the
// socket, unencrypted. Hitch translates them onto its ssh2 connection, as OpenSSH's master does
// in channels.c (channel_proxy_downstream/upstream): the client's channels become channels of
// the master, numbered by the master, and what the server sends on them goes back to the client
// under the client's own channel numbers.
//
// What is carried: "session" channels (pty, env, shell, exec, subsystem, window-change, signal;
// shown in Hitch as external sessions, like passenger sessions) and "direct-tcpip" channels,
// with their data, stderr, EOF, close and exit status, and flow control both ways. Global
// requests and other channel types are refused as the protocol allows; input that breaks the
// protocol closes that one client.
import type { ClientChannel } from 'ssh2';
import { HitchError } from '../errors';
import type { Session } from '../sessions/session';
import { requestEnv, requestExec, requestPty, requestShell, requestSignal, requestSubsystem } from '../masters/ssh2-channels';
import { ProtocolError, reply } from './frames';
import type { ExternalSessionSpec } from './master-port';
import {
  EXTENDED_DATA_STDERR,
  FieldReader,
  messageName,
  OPEN_FAILURE,
  PacketParser,
  PacketWriter,
  SSH_MSG,
  type Packet,
} from './proxy-packets';
import type { ControlConnection } from './connection';

/** The window Hitch gives the client on each channel: what ssh2 gives the server (2 MiB). */
const WINDOW = 2 * 1024 * 1024;
/** The largest data packet Hitch takes from the client (as ssh2 and OpenSSH: 32 KiB). */
const MAX_PACKET = 32 * 1024;
/** Half the window used up: the client gets it back, as OpenSSH's channels do. */
const WINDOW_REFILL = WINDOW / 2;

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function startProxy(client: ControlConnection, rid: number): void {
  client.send(reply.proxy(rid));
  const proxy = new ProxyClient(client);
  // Bytes already after the request are packets too: enterProxyMode hands them over at once.
  client.enterProxyMode((chunk) => proxy.receive(chunk));
  client.onClose(() => proxy.clientGone());
  client.log.info('control socket: proxy mode started (ssh -O proxy)', proxy.context);
}

/** What is still to go to the client on a channel, in order: data waits for window, packets do not. */
type Outgoing = { data: Buffer; stderr: boolean } | { packet: Buffer };

/** One of the client's channels and its counterpart on the master. */
class ProxyChannel {
  channel: ClientChannel | null = null;
  /** A session channel, once the server accepted its shell, exec or subsystem. */
  session: Session | null = null;
  /** Bytes the client lets Hitch send, and the largest packet it takes. */
  clientWindow: number;
  /** Bytes the client may still send before Hitch adjusts its window, and bytes passed on since. */
  ourWindow = WINDOW;
  passedOn = 0;
  private readonly outbox: Outgoing[] = [];
  private paused = false;
  /** Answers to the client's requests go out in the order it asked (RFC 4254 5.4). */
  private replies: Promise<void> = Promise.resolve();
  closeSent = false;
  closeReceived = false;
  /** A session waits for its purpose (shell, exec, subsystem) before Hitch shows it. */
  purpose: { resolve(): void; reject(err: Error): void } | null = null;
  /** How Hitch shows the session: filled in by the request that gives it its purpose. */
  spec: ExternalSessionSpec | null = null;

  constructor(
    private readonly proxy: ProxyClient,
    readonly local: number,
    readonly remote: number,
    readonly kind: 'session' | 'direct-tcpip',
    window: number,
    readonly clientMaxPacket: number,
  ) {
    this.clientWindow = window;
  }

  /** Relays what the server sends on the channel, within the client's window. */
  attach(channel: ClientChannel): void {
    this.channel = channel;
    channel.on('error', (err: Error) => this.proxy.log('debug', 'proxy channel error', { channel: this.local, error: err.message }));
    channel.on('data', (data: Buffer) => this.queue({ data, stderr: false }));
    channel.stderr.on('data', (data: Buffer) => this.queue({ data, stderr: true }));
    const ended = (stream: NodeJS.ReadableStream): Promise<void> => new Promise((resolve) => stream.once('end', () => resolve()));
    const bothEnded = Promise.all([ended(channel), ended(channel.stderr)]);
    // EOF once stdout and stderr have both been passed on; ssh2 ends them at the server's EOF
    // (or its CLOSE, when it sent none).
    void bothEnded.then(() => this.queue({ packet: this.proxy.packet(SSH_MSG.CHANNEL_EOF).u32(this.remote).packet() }));
    let exit: Buffer | null = null;
    channel.on('exit', (code: number | null, signal?: string, coreDumped?: boolean, description?: string) => {
      const w = this.proxy.packet(SSH_MSG.CHANNEL_REQUEST).u32(this.remote);
      // ssh2 reports signals as SIGTERM; SSH names them TERM.
      if (typeof code === 'number') exit = w.string('exit-status').bool(false).u32(code).packet();
      else exit = w.string('exit-signal').bool(false).string((signal ?? '').replace(/^SIG/, '')).bool(coreDumped === true).string(description ?? '').string('').packet();
    });
    const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
    // The exit status goes just before CLOSE, after all output (sshd may send it before EOF,
    // while output is still held back by the client's window).
    void Promise.all([closed, bothEnded]).then(() => {
      if (exit) this.queue({ packet: exit });
      this.queue({ packet: this.proxy.packet(SSH_MSG.CHANNEL_CLOSE).u32(this.remote).packet() });
      this.closeSent = true;
      this.proxy.forgetIfDone(this);
    });
  }

  confirm(): void {
    this.proxy.send(this.proxy.packet(SSH_MSG.CHANNEL_OPEN_CONFIRMATION).u32(this.remote).u32(this.local).u32(WINDOW).u32(MAX_PACKET).packet());
  }

  private queue(item: Outgoing): void {
    if (this.closeSent) return;
    this.outbox.push(item);
    this.flush();
  }

  /** The client's WINDOW_ADJUST. */
  addClientWindow(bytes: number): void {
    if (this.clientWindow + bytes > 0xffffffff) throw new ProtocolError(`window adjust of ${bytes} overflows the window`);
    this.clientWindow += bytes;
    this.flush();
  }

  /** Sends what the client's window allows; the server's side waits (paused) for the rest. */
  private flush(): void {
    while (this.outbox.length > 0) {
      const item = this.outbox[0]!;
      if ('packet' in item) {
        this.proxy.send(item.packet);
        this.outbox.shift();
        continue;
      }
      const n = Math.min(item.data.length, this.clientWindow, this.clientMaxPacket);
      if (n === 0) break;
      const chunk = item.data.subarray(0, n);
      const w = item.stderr
        ? this.proxy.packet(SSH_MSG.CHANNEL_EXTENDED_DATA).u32(this.remote).u32(EXTENDED_DATA_STDERR)
        : this.proxy.packet(SSH_MSG.CHANNEL_DATA).u32(this.remote);
      this.proxy.send(w.string(chunk).packet());
      this.clientWindow -= n;
      if (n === item.data.length) this.outbox.shift();
      else item.data = item.data.subarray(n);
    }
    // Paused, ssh2 stops returning window to the server once its own buffer is full.
    const waiting = this.outbox.length > 0;
    if (waiting !== this.paused && this.channel) {
      this.paused = waiting;
      if (waiting) {
        this.channel.pause();
        this.channel.stderr.pause();
      } else {
        this.channel.resume();
        this.channel.stderr.resume();
      }
    }
  }

  /** The client's data for the server; its window comes back once ssh2 has taken the data. */
  write(data: Buffer, drop: boolean): void {
    if (data.length > MAX_PACKET) throw new ProtocolError(`data packet of ${data.length} bytes exceeds ${MAX_PACKET}`);
    if (data.length > this.ourWindow) throw new ProtocolError(`sent ${data.length} bytes with ${this.ourWindow} left in the window`);
    this.ourWindow -= data.length;
    const channel = this.channel;
    if (channel && channel.writable && !this.closeReceived && !drop) channel.write(data, () => this.passed(data.length));
    // Data dropped (for a side that is closing) still counts, so that the window stays open.
    else this.passed(data.length);
  }

  private passed(bytes: number): void {
    this.passedOn += bytes;
    if (this.passedOn < WINDOW_REFILL || this.closeSent || this.closeReceived) return;
    this.proxy.send(this.proxy.packet(SSH_MSG.CHANNEL_WINDOW_ADJUST).u32(this.remote).u32(this.passedOn).packet());
    this.ourWindow += this.passedOn;
    this.passedOn = 0;
  }

  /** Answers a request once `outcome` settles, after the answers to earlier ones. */
  answer(wantReply: boolean, outcome: Promise<unknown>): void {
    const ok = outcome.then(
      () => true,
      () => false,
    );
    this.replies = this.replies.then(async () => {
      const accepted = await ok;
      if (!wantReply || this.closeSent) return;
      this.proxy.send(this.proxy.packet(accepted ? SSH_MSG.CHANNEL_SUCCESS : SSH_MSG.CHANNEL_FAILURE).u32(this.remote).packet());
    });
  }

  /** The client closed the channel, or went away: the server side is closed as a tab's would be. */
  close(): void {
    this.purpose?.reject(new Error('the client closed the channel'));
    this.purpose = null;
    if (this.session) this.session.close();
    else this.channel?.close();
  }
}

type Handler = (proxy: ProxyClient, msg: FieldReader) => void;

/** The client's messages, one handler each (after OpenSSH's dispatch tables). */
const handlers = new Map<number, Handler>([
  [SSH_MSG.GLOBAL_REQUEST, (p, msg) => p.globalRequest(msg)],
  [SSH_MSG.CHANNEL_OPEN, (p, msg) => p.open(msg)],
  [SSH_MSG.CHANNEL_REQUEST, (p, msg) => p.request(msg)],
  [SSH_MSG.CHANNEL_DATA, (p, msg) => p.data(msg, false)],
  [SSH_MSG.CHANNEL_EXTENDED_DATA, (p, msg) => p.data(msg, true)],
  [SSH_MSG.CHANNEL_WINDOW_ADJUST, (p, msg) => p.windowAdjust(msg)],
  [SSH_MSG.CHANNEL_EOF, (p, msg) => p.eof(msg)],
  [SSH_MSG.CHANNEL_CLOSE, (p, msg) => p.close(msg)],
]);

/** One proxy client: its packets in, its channels on the master. */
class ProxyClient {
  private readonly parser = new PacketParser();
  private readonly channels = new Map<number, ProxyChannel>();
  private nextLocal = 0;
  private gone = false;

  constructor(private readonly client: ControlConnection) {}

  get context(): Record<string, unknown> {
    return { master: this.client.server.master.id, client: this.client.number };
  }

  log(level: 'debug' | 'info' | 'warn', message: string, extra: Record<string, unknown> = {}): void {
    this.client.log[level](`control socket: ${message}`, { ...this.context, ...extra });
  }

  packet(type: number): PacketWriter {
    return new PacketWriter(type);
  }

  send(packet: Buffer): void {
    if (!this.gone) this.client.send(packet);
  }

  receive(chunk: Buffer): void {
    if (this.gone) return;
    try {
      this.parser.push(chunk);
      for (let packet = this.parser.next(); packet && !this.gone; packet = this.parser.next()) this.dispatch(packet);
    } catch (err) {
      // Only this client goes; the master and everyone else on it carry on.
      const reason = err instanceof ProtocolError ? err.message : `internal error: ${errorMessage(err)}`;
      this.log('warn', 'malformed proxy input, connection closed', { reason });
      this.client.close(null);
    }
  }

  private dispatch(packet: Packet): void {
    const handler = handlers.get(packet.type);
    // The client only ever receives what it asked for, so replies from it (and anything outside
    // the connection protocol, which proxy mode does not carry) break the protocol.
    if (!handler) throw new ProtocolError(`unexpected ${messageName(packet.type)} from a proxy client`);
    handler(this, new FieldReader(packet.body, messageName(packet.type)));
  }

  private channelFor(msg: FieldReader): ProxyChannel {
    const local = msg.u32('recipient channel');
    const ch = this.channels.get(local);
    if (!ch) throw new ProtocolError(`no channel ${local}`);
    return ch;
  }

  /** A client's channel whose CLOSE went both ways is forgotten. */
  forgetIfDone(ch: ProxyChannel): void {
    if (ch.closeSent && ch.closeReceived) this.channels.delete(ch.local);
  }

  globalRequest(msg: FieldReader): void {
    const name = msg.text('request name');
    const wantReply = msg.bool('want reply');
    // Remote forwards asked this way would belong to this client alone, which Hitch does not
    // track (`ssh -O forward -R` asks the master instead). A keepalive (ServerAliveInterval)
    // gets the failure sshd gives it too: the client only wants an answer. OpenSSH's master
    // closes the client instead; a refusal lets it carry on.
    const keepalive = name === 'keepalive@openssh.com';
    this.log(keepalive ? 'debug' : 'info', 'proxy client global request refused', { request: name });
    if (wantReply) this.send(this.packet(SSH_MSG.REQUEST_FAILURE).packet());
  }

  open(msg: FieldReader): void {
    const type = msg.text('channel type');
    const remote = msg.u32('sender channel');
    const window = msg.u32('initial window size');
    const maxPacket = msg.u32('maximum packet size');
    if (maxPacket === 0) throw new ProtocolError('channel open with a maximum packet size of 0');
    const refuse = (reason: number, description: string): void => {
      this.log('info', 'proxy channel refused', { type, reason: description });
      this.send(this.packet(SSH_MSG.CHANNEL_OPEN_FAILURE).u32(remote).u32(reason).string(description).string('').packet());
    };
    if (type === 'session') {
      msg.end();
      this.openSession(new ProxyChannel(this, this.nextLocal++, remote, 'session', window, maxPacket), refuse);
    } else if (type === 'direct-tcpip') {
      const host = msg.text('host to connect');
      const port = msg.u32('port to connect');
      msg.text('originator address');
      msg.u32('originator port');
      msg.end();
      if (port > 65535) throw new ProtocolError(`direct-tcpip to port ${port}`);
      this.openDirect(new ProxyChannel(this, this.nextLocal++, remote, 'direct-tcpip', window, maxPacket), host, port, refuse);
    } else {
      refuse(OPEN_FAILURE.ADMINISTRATIVELY_PROHIBITED, `${type} channels are not offered by Hitch`);
    }
  }

  /**
   * A session channel is confirmed to the client as soon as the master's is open; Hitch then
   * shows it (as an external session) once the client's shell, exec or subsystem is accepted.
   */
  private openSession(ch: ProxyChannel, refuse: (reason: number, description: string) => void): void {
    const spec: ExternalSessionSpec = {
      kind: 'shell',
      command: null,
      hitchRun: false,
      setup: (channel) =>
        new Promise<void>((resolve, reject) => {
          if (this.gone) return reject(new Error('the client went away'));
          ch.purpose = { resolve, reject };
          this.channels.set(ch.local, ch);
          ch.attach(channel);
          ch.confirm();
        }),
    };
    ch.spec = spec;
    this.client.server.master.openSession(spec).then(
      ({ session }) => {
        ch.session = session;
        this.log('info', 'proxy session started', { session: session.id, command: spec.command });
        if (this.gone || ch.closeReceived) session.close();
      },
      (err: unknown) => {
        // Confirmed already: the channel's close reaches the client as CLOSE.
        if (ch.channel) return;
        // Past the server's MaxSessions (and no further connection): as sshd says it, a shortage.
        const full = err instanceof HitchError && err.code === 'max-sessions';
        refuse(full ? OPEN_FAILURE.RESOURCE_SHORTAGE : OPEN_FAILURE.CONNECT_FAILED, errorMessage(err));
      },
    );
  }

  private openDirect(ch: ProxyChannel, host: string, port: number, refuse: (reason: number, description: string) => void): void {
    const { master } = this.client.server;
    master.retain(); // a forward in use keeps the master from idling out
    master.forwardOut(host, port).then(
      (channel) => {
        channel.once('close', () => master.release());
        if (this.gone) {
          channel.close();
          return;
        }
        this.channels.set(ch.local, ch);
        ch.attach(channel);
        ch.confirm();
        this.log('info', 'proxy forward started', { to: `${host}:${port}` });
      },
      (err: unknown) => {
        master.release();
        refuse(OPEN_FAILURE.CONNECT_FAILED, errorMessage(err));
      },
    );
  }

  request(msg: FieldReader): void {
    const ch = this.channelFor(msg);
    const type = msg.text('request type');
    const wantReply = msg.bool('want reply');
    const channel = ch.channel!;
    const refused = (why: string): void => {
      this.log('info', 'proxy channel request refused', { channel: ch.local, request: type, reason: why });
      ch.answer(wantReply, Promise.reject(new Error(why)));
    };
    if (ch.kind !== 'session') return refused('not a session channel');
    const spec = ch.spec;
    /** shell, exec and subsystem give a session its purpose, once: Hitch then shows it. */
    // The request goes to the server only once it is known to be the session's first purpose:
    // a second shell or exec (or one after close) is refused here and never reaches the server.
    const purpose = (kind: ExternalSessionSpec['kind'], command: string | null, send: () => Promise<void>): void => {
      const waiting = ch.purpose;
      if (!waiting || !spec) return refused('the session has its purpose already');
      ch.purpose = null;
      spec.kind = kind;
      spec.command = command;
      const outcome = send();
      outcome.then(waiting.resolve, waiting.reject);
      ch.answer(wantReply, outcome);
    };
    switch (type) {
      case 'pty-req': {
        const term = msg.text('terminal type');
        const cols = msg.u32('columns');
        const rows = msg.u32('rows');
        msg.u32('width in pixels');
        msg.u32('height in pixels');
        const modes = Buffer.from(msg.bytes('terminal modes'));
        msg.end();
        ch.answer(wantReply, requestPty(channel, { term, cols, rows, modes: modes.length > 0 ? modes : null }));
        return;
      }
      case 'env': {
        const name = msg.text('variable name');
        const value = msg.text('variable value');
        msg.end();
        // Sent without asking the server for an answer (it drops names AcceptEnv does not
        // allow, silently), so a client that asks is told it was passed on.
        requestEnv(channel, name, value);
        ch.answer(wantReply, Promise.resolve());
        return;
      }
      case 'shell':
        msg.end();
        return purpose('shell', null, () => requestShell(channel));
      case 'exec': {
        const command = msg.text('command');
        msg.end();
        return purpose('exec', command, () => requestExec(channel, command));
      }
      case 'subsystem': {
        const name = msg.text('subsystem name');
        msg.end();
        return purpose('exec', `${name} (subsystem)`, () => requestSubsystem(channel, name));
      }
      case 'window-change': {
        const cols = msg.u32('columns');
        const rows = msg.u32('rows');
        const width = msg.u32('width in pixels');
        const height = msg.u32('height in pixels');
        msg.end();
        channel.setWindow(rows, cols, height, width);
        ch.answer(wantReply, Promise.resolve());
        return;
      }
      case 'signal': {
        const name = msg.text('signal name');
        msg.end();
        requestSignal(channel, name);
        ch.answer(wantReply, Promise.resolve());
        return;
      }
      default:
        // x11-req, auth-agent-req@openssh.com and the like: not offered through Hitch.
        if (wantReply) refused('not offered by Hitch');
    }
  }

  data(msg: FieldReader, extended: boolean): void {
    const ch = this.channelFor(msg);
    if (extended) msg.u32('data type code');
    const data = msg.bytes('data');
    msg.end();
    // A client has no stderr to send to a server: such data counts against the window, dropped.
    ch.write(Buffer.from(data), extended);
  }

  windowAdjust(msg: FieldReader): void {
    const ch = this.channelFor(msg);
    const bytes = msg.u32('bytes to add');
    msg.end();
    ch.addClientWindow(bytes);
  }

  eof(msg: FieldReader): void {
    const ch = this.channelFor(msg);
    msg.end();
    ch.channel?.end();
  }

  close(msg: FieldReader): void {
    const ch = this.channelFor(msg);
    msg.end();
    if (ch.closeReceived) throw new ProtocolError(`channel ${ch.local} closed twice`);
    ch.closeReceived = true;
    if (!ch.closeSent) ch.close();
    this.forgetIfDone(ch);
  }

  /** The client's connection closed: all its channels close with it. */
  clientGone(): void {
    if (this.gone) return;
    this.gone = true;
    for (const ch of this.channels.values()) if (!ch.closeSent) ch.close();
    this.channels.clear();
  }
}

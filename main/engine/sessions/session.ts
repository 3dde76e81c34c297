// A session: one channel on a master connection, a shell with a pty or one command. Output is decoded as UTF-8
// (never splitting a character across chunks), batched so a fast stream (not a key's echo) becomes a few
// messages per frame rather than one per packet, and kept as a bounded scrollback so a
// reloading UI can reattach to a live session.
import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel } from 'ssh2';
import type { OutputStream, SessionView } from '../../../preload/api';
import type { MasterConnection } from '../masters/master';
import { requestSignal } from '../masters/ssh2-channels';

/**
 * How long a stream of output is gathered before it is sent on (VS Code batches per ~5 ms
 * too); the first output after a quiet spell is not held back.
 */
const BATCH_MS = 5;
/**
 * Text gathered past this goes at once: a channel let go after a hold hands over a whole SSH
 * window (2 MiB) in one go, and in pieces a client's hold (a terminal behind in acknowledging)
 * stops it again after the first ones instead of getting it all in one message.
 */
const BATCH_MAX_CHARS = 64 * 1024;
/** Scrollback kept for reattaching, in characters. */
const SCROLLBACK_CHARS = 1_000_000;

export interface SessionInfo {
  id: string;
  hostId: string;
  masterId: string;
  kind: SessionView['kind'];
  command: string | null;
  /**
   * Output passed on as bytes (Buffers in events), for exec sessions whose reader wants them
   * verbatim: the `hitch` command's. Its output goes only to the client that ran it.
   */
  raw?: boolean;
  /** The engine client holding it (see owners.ts); it ends when that client goes. Null: the engine's own. */
  owner?: string | null;
  /** Opened by a stock client through a control socket: its input and output are that client's, not ours. */
  external?: boolean;
  /**
   * An external session opened by `hitch exec` (it said so in its HELLO): shown as the run of
   * a `hitch` command, private to it as a raw run is, not as a stock client's session.
   */
  run?: boolean;
  /** Runs on a pty (closing the channel then hangs the pty up); unknown counts as yes. */
  tty?: boolean;
  /** A shell that could not be made durable, and why. */
  notDurable?: string;
}

/** A `hitch exec` run: its output and input are that command's alone (raw, or through the control socket). */
export function isPrivateRun(info: SessionInfo): boolean {
  return info.raw === true || info.run === true;
}

export class Session extends EventEmitter<{ data: [offset: number, data: string | Buffer, stream: OutputStream, reset: boolean]; changed: [] }> {
  state: SessionView['state'] = 'open';
  exitCode: number | null = null;
  exitSignal: string | null = null;
  readonly openedAt = Date.now();

  /** One decoder per stream: a character split across chunks is never mixed with the other. */
  private decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  /** Text gathered for the next batch, all of one stream (a raw session's bytes are not batched). */
  private pending: string[] = [];
  /** Characters of text in `pending`. */
  private pendingChars = 0;
  private pendingStream: OutputStream = 'stdout';
  private timer: NodeJS.Timeout | null = null;
  /** Characters (bytes for a raw session) of output sent on so far; the offset of the next chunk. */
  private sent = 0;
  private scrollback: (string | Buffer)[] = [];
  private scrollbackChars = 0;
  /** The session's first remote process, once a process snapshot has found it. */
  rootPid: number | null = null;
  /** The connection under this session dropped: its end is a disconnection, not an exit. */
  protected dropped = false;

  /**
   * `channel` null: a subclass carries the session its own way (a durable shell) and
   * overrides what uses the channel (write, resize, close, signal, endInput).
   */
  constructor(
    readonly info: SessionInfo,
    private readonly channel: ClientChannel | null,
    /** The SSH connection carrying this session (a durable shell moves to a new one on reconnect). */
    public connection: MasterConnection,
  ) {
    super();
    if (channel) this.wire(channel);
  }

  private wire(channel: ClientChannel): void {
    if (!this.info.external) {
      channel.on('data', (chunk: Buffer) => this.receive(chunk, 'stdout'));
      channel.stderr.on('data', (chunk: Buffer) => this.receive(chunk, 'stderr'));
    }
    channel.on('exit', (code: number | null, signal?: string) => {
      this.exitCode = typeof code === 'number' ? code : null;
      // ssh2 adds a SIG prefix; SSH (RFC 4254) and our API name signals without it: `TERM`.
      this.exitSignal = signal ? signal.replace(/^SIG/, '') : null;
    });
    channel.on('close', (code?: number | null, signal?: string) => {
      // A command that ends at once can report its exit before this session listens for it;
      // ssh2 repeats it here.
      if (this.exitCode === null && this.exitSignal === null) {
        if (typeof code === 'number') this.exitCode = code;
        else if (signal) this.exitSignal = signal.replace(/^SIG/, '');
      }
      if (this.state !== 'open') return; // ended already: closed with `keep`
      if (!this.info.raw) for (const stream of ['stdout', 'stderr'] as const) this.receiveText(this.decoders[stream].end(), stream);
      this.flush();
      this.state = this.dropped ? 'disconnected' : 'closed';
      this.emit('changed');
    });
  }

  get id(): string {
    return this.info.id;
  }

  /** Clients that cannot take more of this session's output now (see holdOutput). */
  private readonly holders = new Set<string>();
  /** Being ended: its output is no longer held (releaseOutput). */
  private outputReleased = false;

  /**
   * A client cannot take more of the output now (`on`: its transport is full, or its terminal
   * is too far behind in acknowledging), or can again: while any holds the session, its
   * channel is not read, so SSH's window stops the remote side instead of output piling up
   * here.
   */
  holdOutput(holder: string, on: boolean): void {
    if (on && this.outputReleased) return;
    if (on) this.holders.add(holder);
    else this.holders.delete(holder);
    this.pauseOutput(this.outputHeld);
  }

  /** Some client holds the output (holdOutput). */
  protected get outputHeld(): boolean {
    return this.holders.size > 0;
  }

  /**
   * The session is being ended: what is left of its output (a window's worth at most) is read
   * whoever holds it, or its channel would never finish closing.
   */
  protected releaseOutput(): void {
    this.outputReleased = true;
    this.holders.clear();
    this.pauseOutput(false);
  }

  /** Stops or goes on reading the channel the output arrives on (a durable shell: its carrier's). */
  protected pauseOutput(paused: boolean): void {
    if (!this.channel) return;
    if (paused) this.channel.pause();
    else this.channel.resume();
  }

  /** Called when the connection is lost, before its channels are closed. */
  markDropped(): void {
    if (this.state === 'open') this.dropped = true;
  }

  view(): SessionView {
    const { id, hostId, masterId, kind, command } = this.info;
    return {
      id,
      hostId,
      masterId,
      kind,
      command,
      state: this.state,
      title: command ? `${hostId}: ${command.length > 40 ? command.slice(0, 39) + '…' : command}` : hostId,
      openedAt: this.openedAt,
      exitCode: this.exitCode,
      exitSignal: this.exitSignal,
      rootPid: this.rootPid,
      external: (this.info.external ?? false) && !this.info.run,
      private: isPrivateRun(this.info),
      durable: false,
      notDurable: this.info.notDurable ?? null,
      reconnecting: false,
      tty: this.info.tty ?? true,
    };
  }

  protected receive(chunk: Buffer, stream: OutputStream): void {
    if (this.info.raw) this.passOn(chunk, stream);
    else this.receiveText(this.decoders[stream].write(chunk), stream);
  }

  /**
   * A raw session's bytes go on as they come: its reader is a program, not a screen, and
   * batching would only copy them. (ssh2 hands each packet's data in a buffer of its own.)
   */
  private passOn(chunk: Buffer, stream: OutputStream): void {
    this.keep(chunk);
    const offset = this.sent;
    this.sent += chunk.length;
    this.emit('data', offset, chunk, stream, false);
  }

  private receiveText(text: string, stream: OutputStream): void {
    if (text !== '') this.gather(text, stream);
  }

  /** A batch holds one stream: output of the other sends what was gathered first, keeping the order. */
  private gather(data: string, stream: OutputStream): void {
    if (this.pending.length > 0 && stream !== this.pendingStream) this.flush();
    this.pendingStream = stream;
    this.pending.push(data);
    this.pendingChars += data.length;
    if (this.pendingChars >= BATCH_MAX_CHARS) return this.flush();
    if (this.timer || this.soon) return;
    // Output after a quiet spell (a key's echo, a prompt) goes once this turn of the event loop
    // is over (never from inside the call that received it: whoever opened the session may
    // not listen yet); what follows it within BATCH_MS is a stream, and is batched.
    if (performance.now() - this.lastFlushAt >= BATCH_MS) this.soon = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), BATCH_MS);
  }

  /** The flush of output after a quiet spell, due once this turn of the event loop is over. */
  private soon: NodeJS.Immediate | null = null;

  /** When output was last sent on (performance.now()). */
  private lastFlushAt = -Infinity;

  protected flush(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.soon) clearImmediate(this.soon);
    this.timer = this.soon = null;
    if (this.pending.length === 0) return;
    const data = this.pending.join('');
    this.pending = [];
    this.pendingChars = 0;
    this.lastFlushAt = performance.now();
    this.keep(data);
    const offset = this.sent;
    this.sent += data.length;
    this.emit('data', offset, data, this.pendingStream, false);
  }

  /**
   * The terminal starts over from `screen` (a durable shell reattached: its history and screen
   * as the server kept them): the scrollback is replaced, and viewers clear and redraw.
   */
  /**
   * Text of the engine's own for the viewers' terminals (a durable shell's redrawn screen),
   * in place of output skipped meanwhile: a character the skipped output left half-read is
   * dropped with it.
   */
  protected sendOutput(text: string): void {
    this.decoders.stdout = new StringDecoder('utf8');
    this.gather(text, 'stdout');
    this.flush();
  }

  protected restartOutput(screen: string): void {
    this.flush();
    this.decoders.stdout = new StringDecoder('utf8');
    this.scrollback = [screen];
    this.scrollbackChars = screen.length;
    const offset = this.sent;
    this.sent += screen.length;
    this.emit('data', offset, screen, 'stdout', true);
  }

  private keep(data: string | Buffer): void {
    this.scrollback.push(data);
    this.scrollbackChars += data.length;
    while (this.scrollbackChars > SCROLLBACK_CHARS && this.scrollback.length > 1) {
      this.scrollbackChars -= this.scrollback.shift()!.length;
    }
  }

  /** The retained output and the offset it ends at; later `data` events start there. */
  replay(): { data: string; end: number; encoding?: 'base64' } {
    this.flush();
    if (this.info.raw) return { data: Buffer.concat(this.scrollback as Buffer[]).toString('base64'), end: this.sent, encoding: 'base64' };
    return { data: this.scrollback.join(''), end: this.sent };
  }

  /** Resolves once the channel has taken the data (waits while the server's window is full). */
  write(data: string | Buffer): Promise<void> {
    // An external session's input is its client's: nothing is typed into it from here.
    if (this.state !== 'open' || this.info.external || this.channel!.write(data)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.channel!.off('drain', done);
        this.channel!.off('close', done);
        resolve();
      };
      this.channel!.on('drain', done);
      this.channel!.on('close', done);
    });
  }

  resize(cols: number, rows: number): void {
    if (this.state === 'open' && !this.info.external) this.channel!.setWindow(rows, cols, 0, 0);
  }

  /**
   * Closes the channel. For a pty session sshd then hangs up the pty, so the remote process
   * group gets SIGHUP; without a pty sshd would leave the command running, so it is sent
   * HUP explicitly first (sshd 7.9+ delivers it to the session's process group), unless
   * `keep` asks to leave it running.
   */
  close(keep = false): void {
    if (this.state !== 'open') return;
    this.releaseOutput();
    // `keep`: the person chose to leave the job running; it then shows as detached.
    if (this.info.kind === 'exec' && !keep) requestSignal(this.channel!, 'HUP');
    this.channel!.close();
    if (keep) {
      // sshd holds the channel open until the command exits; for the person it has ended now.
      this.flush();
      this.state = 'closed';
      this.emit('changed');
    }
  }

  /** The SSH "signal" channel request: sshd delivers it to the session's processes. */
  signal(name: string): void {
    if (this.state === 'open') requestSignal(this.channel!, name); // also after the input ended
  }

  /** Ends the input of an exec session (like closing stdin). */
  endInput(): void {
    if (this.state === 'open') this.channel!.end();
  }
}

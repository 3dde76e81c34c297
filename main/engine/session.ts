// A session: one channel on a master connection, a shell with a pty or one command. Output is decoded as UTF-8
// (never splitting a character across chunks), batched so a fast stream becomes a few
// messages per frame rather than one per packet, and kept as a bounded scrollback so a
// reloading UI can reattach to a live session.
import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import type { ClientChannel } from 'ssh2';
import type { SessionView } from '../../preload/api';
import type { MasterConnection } from './master';

/** How long output is gathered before it is sent on (VS Code batches per ~5 ms too). */
const BATCH_MS = 5;
/** Scrollback kept for reattaching, in characters. */
const SCROLLBACK_CHARS = 1_000_000;

export interface SessionInfo {
  id: string;
  hostId: string;
  masterId: string;
  kind: SessionView['kind'];
  command: string | null;
}

export class Session extends EventEmitter<{ data: [offset: number, data: string]; changed: [] }> {
  state: SessionView['state'] = 'open';
  exitCode: number | null = null;
  exitSignal: string | null = null;
  readonly openedAt = Date.now();

  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private timer: NodeJS.Timeout | null = null;
  /** Characters of output sent on so far; the offset of the next chunk. */
  private sent = 0;
  private scrollback: string[] = [];
  private scrollbackChars = 0;
  /** The session's first remote process, once a process snapshot has found it. */
  rootPid: number | null = null;
  /** The connection under this session dropped: its end is a disconnection, not an exit. */
  private dropped = false;

  constructor(
    readonly info: SessionInfo,
    private readonly channel: ClientChannel,
    /** The SSH connection carrying this session. */
    readonly connection: MasterConnection,
  ) {
    super();
    channel.on('data', (chunk: Buffer) => this.receive(chunk));
    channel.stderr.on('data', (chunk: Buffer) => this.receive(chunk));
    channel.on('exit', (code: number | null, signal?: string) => {
      this.exitCode = typeof code === 'number' ? code : null;
      // ssh2 adds a SIG prefix; SSH (RFC 4254) and our API name signals without it: `TERM`.
      this.exitSignal = signal ? signal.replace(/^SIG/, '') : null;
    });
    channel.on('close', () => {
      if (this.state !== 'open') return; // ended already: closed with `keep`
      this.receiveText(this.decoder.end());
      this.flush();
      this.state = this.dropped ? 'disconnected' : 'closed';
      this.emit('changed');
    });
  }

  get id(): string {
    return this.info.id;
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
    };
  }

  private receive(chunk: Buffer): void {
    this.receiveText(this.decoder.write(chunk));
  }

  private receiveText(text: string): void {
    if (text === '') return;
    this.pending += text;
    this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending === '') return;
    const data = this.pending;
    this.pending = '';
    this.keep(data);
    const offset = this.sent;
    this.sent += data.length;
    this.emit('data', offset, data);
  }

  private keep(data: string): void {
    this.scrollback.push(data);
    this.scrollbackChars += data.length;
    while (this.scrollbackChars > SCROLLBACK_CHARS && this.scrollback.length > 1) {
      this.scrollbackChars -= this.scrollback.shift()!.length;
    }
  }

  /** The retained output and the offset it ends at; later `data` events start there. */
  replay(): { data: string; end: number } {
    this.flush();
    return { data: this.scrollback.join(''), end: this.sent };
  }

  write(data: string): void {
    if (this.state === 'open') this.channel.write(data);
  }

  resize(cols: number, rows: number): void {
    if (this.state === 'open') this.channel.setWindow(rows, cols, 0, 0);
  }

  /**
   * Closes the channel. For a pty session sshd then hangs up the pty, so the remote process
   * group gets SIGHUP; without a pty sshd would leave the command running, so it is sent
   * HUP explicitly first (sshd 7.9+ delivers it to the session's process group), unless
   * `keep` asks to leave it running.
   */
  close(keep = false): void {
    if (this.state !== 'open') return;
    // `keep`: the person chose to leave the job running; it then shows as detached.
    if (this.info.kind === 'exec' && !keep) this.channel.signal('HUP');
    this.channel.close();
    if (keep) {
      // sshd holds the channel open until the command exits; for the person it has ended now.
      this.flush();
      this.state = 'closed';
      this.emit('changed');
    }
  }

  /** The SSH "signal" channel request: sshd delivers it to the session's processes. */
  signal(name: string): void {
    if (this.state === 'open') this.channel.signal(name);
  }

  /** Ends the input of an exec session (like closing stdin). */
  endInput(): void {
    if (this.state === 'open') this.channel.end();
  }
}

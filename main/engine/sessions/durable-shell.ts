// A shell that outlives its connection. It runs in tmux on the host, in a session of Hitch's
// own tmux server (tmux-control.ts), and Hitch talks to it as a tmux control-mode client over
// an exec channel: the shell's output arrives as the bytes it wrote (so xterm.js keeps the
// scrollback as for any shell), keys go in as hex. When the connection drops, the channel goes
// and the shell and its jobs stay; once the master is back, `carry` rejoins it over a new
// channel, and the terminal is redrawn from the history and screen tmux kept meanwhile.
// A terminal that falls behind (a flood faster than it draws) is redrawn the same way once it
// has caught up, the output in between skipped: tmux keeps the pane's state, as mosh does.
import type { ClientChannel } from 'ssh2';
import type { SessionView } from '../../../preload/api';
import type { MasterConnection } from '../masters/master';
import { Session, type SessionInfo } from './session';
import {
  commands,
  ControlParser,
  keyPieces,
  KEYS_REPLIES,
  parseKeysApplied,
  redrawnScreen,
  redrawReplies,
  screenKey,
  START_QUERIES,
  type ControlStart,
  type PaneCapture,
  isPaneId,
} from './tmux-control';

/**
 * `carry` failed after tmux had attached the carrier: the channel is left open for the caller
 * to close when tmux may be told a client detached (tmux-lane.ts).
 */
export class AttachedCarrierError extends Error {}

/** Keys kept while the shell is reconnecting: a paste's worth, not a flood. */
const PENDING_INPUT_MAX = 64 * 1024;
/** Lines of history a catch-up redraw brings (DurableShell.catchUp): the terminal's whole scrollback (TerminalView.svelte). */
const CATCH_UP_LINES = 10_000;
/** While output is skipped, the screen is redrawn this often at most (ms): 20 frames a second. */
const FRAME_MS = 50;
/**
 * A catch-up's history is cut to this many characters, oldest lines first: a viewer draws it
 * before anything else, and its slowest frame grows with it.
 */
const REDRAW_MAX_CHARS = 400_000;

interface Waiting {
  /** Reply blocks still due for the line: one per command, unless tmux refuses one (that ends the line). */
  blocks: number;
  /** The answers of the line's commands so far. */
  answers: string[][];
  resolve(lines: string[]): void;
  reject(err: Error): void;
  /** Runs as the line's last reply is read, before any line after it: output after a capture is not in it. */
  onReply?: (answers: string[][]) => void;
}

/** A command was not answered because its carrier went away: tmux may or may not have run it. */
class CarrierGoneError extends Error {}

/** One tmux control client on an exec channel: commands in, replies in order, pane output. */
class ControlClient {
  /** Replies still due, oldest first; the first are tmux's answers to the command that started the client. */
  private readonly waiting: Waiting[] = [];
  /** Resolves with tmux's answers to every command of the start (`startReplies` of them). */
  readonly started: Promise<string[][]>;
  /** tmux said %exit: the session ended (its shell exited) or was killed. */
  exited = false;
  /** Resolves once the channel has closed. */
  readonly closed: Promise<void>;
  /** tmux refused commands.pauseOutput (before 3.2): a pane's output is dropped by the engine instead. */
  pauseRefused = false;

  constructor(
    private readonly channel: ClientChannel,
    startReplies: number,
    output: (pane: string, data: Buffer) => void,
    /** Runs as the start's reply `index` is read, before any line after it. */
    onStartReply?: (index: number) => void,
  ) {
    const starting: Promise<string[]>[] = [];
    for (let i = 0; i < startReplies; i++) {
      starting.push(new Promise((resolve, reject) => this.waiting.push({ blocks: 1, answers: [], resolve, reject, onReply: () => onStartReply?.(i) })));
    }
    this.started = Promise.all(starting);
    const parser = new ControlParser({
      output,
      reply: (ok, lines) => {
        const next = this.waiting[0];
        if (!next) return;
        // tmux drops the rest of a line's commands after one it refuses.
        if (ok) next.answers.push(lines);
        if (ok && --next.blocks > 0) return;
        this.waiting.shift();
        if (ok) {
          next.onReply?.(next.answers);
          next.resolve(lines);
        } else next.reject(new Error(lines.join(' ') || 'tmux refused a command'));
      },
      exit: () => (this.exited = true),
    });
    channel.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch {
        channel.close(); // not tmux speaking
      }
    });
    channel.stderr.on('data', () => undefined); // tmux's own complaints end in the exit status
    this.closed = new Promise((resolve) => channel.once('close', () => resolve()));
    channel.on('close', () => {
      for (const w of this.waiting.splice(0)) w.reject(new CarrierGoneError('the tmux client went away'));
    });
  }

  /** Runs a line of `blocks` commands; resolves with the last one's answer. `onReply` gets them all as they are read. */
  run(command: string, blocks = 1, onReply?: (answers: string[][]) => void): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ blocks, answers: [], resolve, reject, onReply });
      this.channel.write(command + '\n');
    });
  }

  close(): void {
    this.channel.close();
  }
}


export class DurableShell extends Session {
  private control: ControlClient | null = null;
  /** The pane the shell runs in (`%3`), once known. */
  private pane: string | null = null;
  private size: { cols: number; rows: number };
  /** The tmux control client on the host (a child of sshd, not part of the shell's tree). */
  carrierPid: number | null = null;
  /** The shell's connection dropped (or its tmux client went): it is being brought back. */
  reconnecting = false;
  /**
   * Keys typed while reconnecting, sent once the shell is back (as TCP would have carried them
   * through a blip); beyond PENDING_INPUT_MAX bytes the rest is dropped.
   */
  private pendingInput: Buffer[] = [];
  private pendingBytes = 0;
  /** The number of the last piece of keys sent (commands.sendKeys). */
  private keysSent = 0;
  /**
   * Pieces of keys sent that tmux has not yet answered, oldest first. When the carrier goes
   * before the answers come, the next carrier asks tmux which of them it applied and sends
   * the others again: keys typed as the network dropped are neither lost nor doubled.
   */
  private unanswered: { seq: number; piece: Buffer }[] = [];
  /** How the person ended it: `kill` (tab closed) or `detach` (left running on the host). */
  private ending: 'kill' | 'detach' | null = null;

  constructor(
    info: SessionInfo,
    /** The tmux session name, Hitch's own (`hitch-` and 16 hex digits). */
    readonly name: string,
    /** Names this engine's numbering of the keys it sends (controlCommand's keysMark). */
    private readonly keysMark: string,
    connection: MasterConnection,
    size: { cols: number; rows: number },
  ) {
    super(info, null, connection);
    this.size = size;
  }

  /**
   * Carries the shell over `channel`, a control client of this tmux session just started on
   * `connection` by `start` (controlCommand: rejoining, attached to the running shell after a
   * reconnect, so the terminal is redrawn from what tmux kept). The queries chained into the
   * start answer everything needed to go live: no round trip of their own. Resolves once the
   * shell is live again; rejects when tmux would not take it (the session is gone) or the shell
   * was closed meanwhile. The channel is closed then, unless tmux had attached the client: that
   * rejection is an AttachedCarrierError, and closing is the caller's (tmux-lane.ts).
   */
  async carry(channel: ClientChannel, connection: MasterConnection, start: ControlStart): Promise<void> {
    const queriesAt = start.replies - start.queries;
    // Output before the pane is known waits. Rejoining, output before the capture is in the
    // capture (dropped), output after it waits too.
    const early: { pane: string; data: Buffer }[] = [];
    let captured = !start.rejoin;
    /** tmux has attached this client to the session: its leaving now notifies every control client. */
    let attached = false;
    let live = false;
    /** The number of the last keys from this engine tmux applied (commands.keysApplied). */
    let keysApplied = 0;
    const control = new ControlClient(
      channel,
      start.replies,
      (pane, data) => {
        if (live) {
          if (pane !== this.pane) return;
          if (this.skipping) this.droppedSince = true;
          else this.receive(data, 'stdout');
        } else if (captured) early.push({ pane, data });
      },
      (index) => {
        if (index === queriesAt - 1) attached = true; // new-session or attach-session, the last before the queries
        if (index === queriesAt + START_QUERIES.capture) captured = true;
      },
    );
    channel.on('close', () => this.carrierClosed(control));
    try {
      const replies = (await control.started).slice(queriesAt);
      const [line] = replies[START_QUERIES.describe] ?? [];
      const [pane, pid, clientPid] = (line ?? '').split(' ');
      if (!pane || !isPaneId(pane) || !/^\d+$/.test(pid ?? '') || !/^\d+$/.test(clientPid ?? '')) throw new Error(`tmux described the pane as ${JSON.stringify(line)}`);
      keysApplied = parseKeysApplied(replies[START_QUERIES.keys] ?? [], this.keysMark);
      const screen = start.rejoin ? redrawnScreen({ lines: replies[START_QUERIES.capture] ?? [], normal: replies[START_QUERIES.normal] ?? [], state: replies[START_QUERIES.cursor]?.[0] }, 'over') : null;
      // Closed while it was being brought back: the engine ends it on the host (Engine.closeDurable).
      if (this.state !== 'open') throw new Error('the shell was closed meanwhile');
      this.pane = pane;
      this.rootPid = Number(pid);
      this.carrierPid = Number(clientPid);
      if (screen !== null) this.restartOutput(screen);
    } catch (err) {
      // A client that never attached leaves without notifying anyone; an attached one is the caller's to close.
      if (attached) throw new AttachedCarrierError((err as Error).message);
      channel.close();
      throw err;
    }
    this.connection = connection;
    this.control = control;
    live = true;
    // Nothing is held back from a new carrier; a viewer still behind skips from here on.
    this.resetSkipping();
    for (const { pane, data } of early) if (pane === this.pane) this.receive(data, 'stdout');
    if (this.outputHeld) this.pauseOutput(true);
    this.reconnecting = false;
    this.dropped = false;
    this.emit('changed');
    // Keys the last carrier sent that tmux did not apply go again, before those typed since.
    // The numbering goes on from tmux's: this engine may have carried the shell before.
    this.keysSent = Math.max(this.keysSent, keysApplied);
    const typed = Buffer.concat([...this.unanswered.filter((k) => k.seq > keysApplied).map((k) => k.piece), ...this.pendingInput]);
    this.unanswered = [];
    this.pendingInput = [];
    this.pendingBytes = 0;
    if (typed.length > 0) void this.write(typed);
  }

  private carrierClosed(control: ControlClient): void {
    if (control !== this.control) return; // a carrier that never went live, or an old one
    this.control = null;
    if (this.state !== 'open') return;
    if (this.ending !== null || control.exited) {
      // Closed here, detached here, or the shell exited on the host: it has ended for Hitch.
      this.flush();
      this.state = 'closed';
    } else this.reconnecting = true;
    this.emit('changed');
  }

  /** Could not be brought back: the tmux session is gone from the host (say, the host rebooted). */
  lost(): void {
    if (this.state !== 'open') return;
    this.reconnecting = false;
    this.state = 'disconnected';
    this.emit('changed');
  }

  /** A carrier is live: what the person does reaches tmux through it. */
  get carried(): boolean {
    return this.control !== null;
  }

  /** Resolves once its carrier's channel has closed (at once when it has none), or after `ms`. */
  carrierGone(ms: number): Promise<void> {
    const control = this.control;
    if (!control) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      void control.closed.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The terminal's size, as the next carrier sets it. */
  get terminalSize(): { cols: number; rows: number } {
    return { ...this.size };
  }

  override view(): SessionView {
    return { ...super.view(), durable: true, reconnecting: this.reconnecting };
  }

  /** A viewer fell behind: the pane's output is skipped, and the terminal redrawn from tmux instead (catchUp). */
  private skipping = false;
  /** tmux holds the pane's output back from this carrier (commands.pauseOutput; tmux 3.2 and later). */
  private panePaused = false;
  /** Output was dropped here since the last redraw was asked for (tmux before 3.2 keeps sending it). */
  private droppedSince = false;
  /** What the last redraw found (screen and state): the same again means the pane has gone quiet. */
  private lastFrame = '';
  /** What the last redraw with history showed: found again, the terminal has it already. */
  private lastHistoryFrame = '';
  /** A redraw's capture is on its way, or waits for its frame. */
  private catchingUp = false;
  private frameTimer: NodeJS.Timeout | null = null;
  private lastRedrawAt = -Infinity;

  /**
   * A viewer is too far behind (`paused`), or no longer. The carrier is never stopped: tmux,
   * with its only client not reading, stops reading the pane, and a flood would last as long
   * as the slowest terminal takes to draw it. Instead, once a viewer is behind, tmux is asked
   * to hold the pane's output back from this carrier (it keeps reading the pane and drops what
   * it held back), and as soon as no viewer is behind, the terminal is redrawn from what tmux
   * shows (catchUp), as mosh does.
   */
  protected override pauseOutput(paused: boolean): void {
    if (paused && !this.skipping) {
      this.skipping = true;
      this.lastFrame = '';
      const control = this.control;
      const pane = this.pane;
      if (control && pane && this.ending === null && !control.pauseRefused) {
        control.run(commands.pauseOutput(pane), 1, () => control === this.control && this.skipping && (this.panePaused = true)).catch((err: unknown) => {
          // tmux before 3.2: its output keeps coming, and is dropped here.
          if (!(err instanceof CarrierGoneError)) control.pauseRefused = true;
        });
      }
    } else if (!paused && this.skipping) this.catchUp(false);
  }

  /**
   * Redraws the terminal from the pane as tmux has it (commands.redraw): while it keeps
   * changing, its screen, at most every FRAME_MS; once two redraws find it the same, its last
   * CATCH_UP_LINES lines of history too (REDRAW_MAX_CHARS at most), and its output flows again
   * from that instant. What was skipped is in tmux's history; what the pane prints after the
   * capture follows it.
   */
  private catchUp(history: boolean): void {
    const control = this.control;
    const pane = this.pane;
    if (!control || !pane || !this.skipping || this.state !== 'open' || this.ending !== null || this.catchingUp) return;
    const wait = history ? 0 : this.lastRedrawAt + FRAME_MS - performance.now();
    if (wait > 0) {
      this.catchingUp = true;
      this.frameTimer = setTimeout(() => {
        this.frameTimer = null;
        this.catchingUp = false;
        this.catchUp(false);
      }, wait);
      return;
    }
    const lines = history ? CATCH_UP_LINES : 0;
    const resume = history && this.panePaused;
    const command = commands.redraw(this.name, pane, lines, resume);
    this.catchingUp = true;
    this.droppedSince = false;
    this.lastRedrawAt = performance.now();
    control
      .run(command, redrawReplies(lines, resume), (answers) => {
        this.catchingUp = false;
        if (control !== this.control || this.state !== 'open' || this.ending !== null || !this.skipping) return;
        const [captured = [], ...rest] = answers.slice(resume ? 1 : 0);
        const capture: PaneCapture = { lines: captured, normal: rest.length > 1 ? rest[0] : [], state: rest.at(-1)?.[0] };
        const frame = screenKey(capture);
        const changed = frame !== this.lastFrame;
        const busy = this.droppedSince || changed;
        this.lastFrame = frame;
        if (history) {
          this.restartOutput(redrawnScreen(capture, 'over', REDRAW_MAX_CHARS));
          this.lastHistoryFrame = frame;
          this.stopSkipping();
        } else if (!busy && frame === this.lastHistoryFrame) {
          // Quiet, and as the last redraw with history left it: the viewer has that already.
          this.resume(control, pane);
        } else {
          if (changed) this.sendOutput(redrawnScreen(capture, 'frame'));
          if (!busy) this.catchUp(true);
          else if (!this.outputHeld) this.catchUp(false);
        }
      })
      .catch((err: unknown) => {
        this.catchingUp = false;
        // Refused (not a carrier gone: the next one redraws anyway): the output flows again.
        if (!(err instanceof CarrierGoneError) && control === this.control) this.resume(control, pane);
      });
  }

  /** Output flows again from here: tmux sends the pane's output on, unless it never held it back. */
  private resume(control: ControlClient, pane: string): void {
    if (this.panePaused) control.run(commands.resumeOutput(pane)).catch(() => undefined);
    this.stopSkipping();
  }

  private stopSkipping(): void {
    this.resetSkipping();
    // A viewer behind again by now (the history is a lot to draw) skips again.
    if (this.outputHeld) this.pauseOutput(true);
  }

  private resetSkipping(): void {
    this.skipping = false;
    this.panePaused = false;
    if (this.frameTimer) clearTimeout(this.frameTimer);
    this.frameTimer = null;
    this.catchingUp = false;
  }

  override write(data: string | Buffer): Promise<void> {
    const control = this.control;
    const pane = this.pane;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.state === 'open' && this.reconnecting) {
      const room = PENDING_INPUT_MAX - this.pendingBytes;
      if (room > 0) this.pendingInput.push(bytes.subarray(0, room));
      this.pendingBytes += Math.min(room, bytes.length);
      return Promise.resolve();
    }
    if (this.state !== 'open' || !control || !pane) return Promise.resolve();
    // Keys go in order; the answer to the last piece says tmux has them all.
    const sent = keyPieces(bytes).map((piece) => {
      const seq = ++this.keysSent;
      this.unanswered.push({ seq, piece });
      return control.run(commands.sendKeys(this.name, pane, this.keysMark, seq, piece), KEYS_REPLIES).then(
        () => this.answered(seq),
        // Refused by tmux (the pane is gone): nothing to send again. A carrier gone first leaves it to the next.
        (err: Error) => (err instanceof CarrierGoneError ? undefined : this.answered(seq)),
      );
    });
    return Promise.all(sent).then(() => undefined);
  }

  /** tmux answered the keys numbered `seq`, and so all before them. */
  private answered(seq: number): void {
    while (this.unanswered.length > 0 && this.unanswered[0]!.seq <= seq) this.unanswered.shift();
  }

  override resize(cols: number, rows: number): void {
    this.size = { cols, rows };
    if (this.state === 'open' && this.control) this.control.run(commands.resize(cols, rows)).catch(() => undefined);
  }

  /** Ends the shell on the host (`keep`: leaves it running there, detached, to reopen later). */
  override close(keep = false): void {
    if (this.state !== 'open') return;
    this.ending = keep ? 'detach' : 'kill';
    this.resetSkipping();
    this.releaseOutput(); // tmux's answer to the kill is read behind the output
    const control = this.control;
    if (!control) {
      // Between connections: nothing carries it now; it is ended (or left) from here.
      this.state = 'closed';
      this.emit('changed');
      return;
    }
    if (keep) control.close();
    else control.run(commands.kill(this.name)).then(() => control.close(), () => control.close());
  }

  /** Signals go to the shell's processes by pid (over the monitor), never to the tmux client. */
  override signal(): void {}

  override endInput(): void {}
}

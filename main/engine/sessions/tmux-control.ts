// tmux control mode (the tmux manual's CONTROL MODE section), the way durable shells talk to
// the tmux server that keeps them on the host. Hitch writes commands, one per line; tmux
// answers each with a block (`%begin … %end` or `%error`) and reports a pane's output as
// `%output %PANE DATA`, where DATA is the bytes the program wrote, with control characters and
// backslashes as octal escapes (`\015`). Everything else (`%window-add`, `%layout-change`…) is
// a notification Hitch does not need.
//
// Only fixed command words, pane ids (`%12`), session names Hitch made (see durableName) and
// integers are ever written: nothing a person or a server typed reaches tmux's command parser.

/** The tmux server of Hitch's durable shells: its own socket name, so a person's tmux is never touched. */
export const TMUX_SOCKET_NAME = 'hitch';
/** Durable session names are Hitch's own: `hitch-` and 16 hex digits. */
const NAME = /^hitch-[0-9a-f]{16}$/;
const PANE = /^%[0-9]{1,9}$/;
/** Names the numbering of the keys one engine sends (see commands.sendKeys): 8 hex digits. */
const KEYS_MARK = /^[0-9a-f]{8}$/;
/** Longest line accepted from tmux. */
const MAX_LINE_BYTES = 16 << 20;
/** Bytes per send-keys command (each byte is three characters of hex and a space). */
const KEYS_PER_COMMAND = 256;

export function isDurableName(name: string): boolean {
  return NAME.test(name);
}

function checkName(name: string): string {
  if (!NAME.test(name)) throw new Error(`not a durable session name: ${JSON.stringify(name)}`);
  return name;
}

/** The pane of session `name`, matched exactly (`=`; without it tmux also takes a name that only starts so). */
function paneOf(name: string): string {
  return `=${checkName(name)}:`;
}

/** A tmux pane id as Hitch accepts one: `%` and 1 to 9 digits. */
export function isPaneId(pane: string): boolean {
  return PANE.test(pane);
}

function checkPane(pane: string): string {
  if (!PANE.test(pane)) throw new Error(`not a tmux pane id: ${JSON.stringify(pane)}`);
  return pane;
}

function checkMark(mark: string): string {
  if (!KEYS_MARK.test(mark)) throw new Error(`not a keys mark: ${JSON.stringify(mark)}`);
  return mark;
}

function checkSize(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`not a terminal size: ${n}`);
  return n;
}

/**
 * The server's settings, set on every attach (the server may have been started by an older
 * Hitch). The server stays up when its last shell ends: a client starting a shell just as an
 * emptied server exits fails ("server exited unexpectedly"), and two starting servers on one
 * socket leave one orphaned; `tmux -L hitch kill-server` ends it by hand. No status line, no prefix key (every key goes to the shell), a long history for
 * what the shell printed while nobody was attached, the pane's size from this client alone.
 */
const SERVER_OPTIONS = [
  'set-option -s exit-empty off',
  'set-option -g status off',
  'set-option -g prefix None',
  'set-option -g prefix2 None',
  'set-option -g escape-time 0',
  'set-option -g history-limit 50000',
  'set-option -g remain-on-exit off',
  'set-option -g default-terminal screen-256color',
  'set-option -g window-size latest',
];

/** How a control client starts: the remote command, and the reply blocks tmux sends for it. */
export interface ControlStart {
  command: string;
  /** One block per command of the chain, the queries at its end included. */
  replies: number;
  /** Rejoining a running shell: the chain ends with its capture and cursor. */
  rejoin: boolean;
  /** The queries the chain ends with (START_QUERIES): their answers are the last `queries` replies. */
  queries: number;
}

/** Answers at the end of a start's replies, in this order (capture and cursor when rejoining). */
export const START_QUERIES = { describe: 0, keys: 1, resize: 2, capture: 3, normal: 4, cursor: 5 } as const;

/**
 * The remote command that starts (`new`) or rejoins (`attach`) a durable shell in control
 * mode. A new shell sets the server's options first, so that its own pane gets the long
 * history too. Every query Hitch needs to go live (the pane, the size, and when rejoining the
 * screen and cursor) is chained into the same command: tmux answers them all as soon as the
 * client is attached, with no round trip of their own. Exit status 127 when the host has no
 * tmux: the caller then opens an ordinary shell.
 */
export function controlCommand(name: string, size: { cols: number; rows: number }, mode: 'new' | 'attach'): ControlStart {
  checkName(name);
  const tmux = `tmux -L ${TMUX_SOCKET_NAME} -f /dev/null -C`;
  const start =
    mode === 'attach'
      ? [`attach-session -t =${name}`]
      : ['start-server', ...SERVER_OPTIONS, `new-session -s ${name} -x ${checkSize(size.cols)} -y ${checkSize(size.rows)}`];
  const queries = [
    commands.describe(name),
    commands.keysApplied(name),
    commands.resize(size.cols, size.rows),
    ...(mode === 'attach' ? [commands.capture(name), commands.captureNormal(name), commands.cursor(name)] : []),
  ];
  const chain = [...start, ...queries];
  // `\;` reaches tmux as `;`, its separator between commands.
  return {
    command: `command -v tmux >/dev/null 2>&1 || exit 127; exec ${tmux} ${chain.join(' \\; ')}`,
    replies: chain.length,
    rejoin: mode === 'attach',
    queries: queries.length,
  };
}

/** Ends a durable shell from an ordinary exec (no control client): cleaning up after a failed start. */
export function killCommand(name: string): string {
  return `tmux -L ${TMUX_SOCKET_NAME} kill-session -t =${checkName(name)} 2>/dev/null || true`;
}

/** Lists Hitch's durable sessions on a host: `NAME PANE PID` per line (none when no server runs). */
export const LIST_COMMAND = `tmux -L ${TMUX_SOCKET_NAME} list-panes -a -F '#{session_name} #{pane_id} #{pane_pid}' 2>/dev/null || true`;

/** The output of LIST_COMMAND: Hitch's durable shells only, whatever else the lines say. */
export function parseLeftRunning(text: string): { name: string; pid: number }[] {
  const shells: { name: string; pid: number }[] = [];
  for (const line of text.split('\n')) {
    const [name, pane, pid] = line.trim().split(' ');
    if (name && NAME.test(name) && pane && PANE.test(pane) && pid && /^\d{1,10}$/.test(pid)) shells.push({ name, pid: Number(pid) });
  }
  return shells;
}

/** Input split into the pieces commands.sendKeys takes, in order. */
export function keyPieces(bytes: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += KEYS_PER_COMMAND) pieces.push(bytes.subarray(i, i + KEYS_PER_COMMAND));
  return pieces;
}

/**
 * The session's variable holding the number of the last keys from the engine marked `mark`:
 * hidden (`set-environment -h`), so no program started in the session sees it, and setting it
 * redraws nothing (a user option would redraw every terminal client on each key).
 */
const keysVariable = (mark: string): string => `HITCH_KEYS_${checkMark(mark)}`;

/** The number of the last keys from `keysMark` tmux applied, from commands.keysApplied's answer (0: none). */
export function parseKeysApplied(lines: string[], keysMark: string): number {
  const prefix = `${keysVariable(keysMark)}=`;
  const line = lines.find((l) => l.startsWith(prefix));
  const n = line === undefined ? 0 : Number(line.slice(prefix.length));
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** Reply blocks tmux sends for a commands.redraw line. */
export function redrawReplies(lines: number, resume: boolean): number {
  return (resume ? 1 : 0) + (lines > 0 ? 3 : 2);
}

/** Reply blocks tmux sends for one commands.sendKeys line (fewer when one is refused: it ends the line). */
export const KEYS_REPLIES = 2;

export const commands = {
  /** The pane of a session, its process (the shell) and this control client's own pid: `%3 12345 12300`. */
  describe: (name: string): string => `display-message -p -t ${paneOf(name)} '#{pane_id} #{pane_pid} #{client_pid}'`,
  /** The session's hidden variables, the numbers of the last keys each engine sent among them (parseKeysApplied). */
  keysApplied: (name: string): string => `show-environment -h -t =${checkName(name)}`,
  resize: (cols: number, rows: number): string => `refresh-client -C ${checkSize(cols)}x${checkSize(rows)}`,
  /**
   * One piece of input (keyPieces), as hex bytes so any byte (a control key, UTF-8) reaches the
   * shell as typed. The same line records `seq`, the piece's number, in the session: tmux runs
   * a line's commands together, so after a drop the number there tells which pieces arrived
   * (DurableShell sends the others again). Answered by KEYS_REPLIES blocks.
   */
  sendKeys(name: string, pane: string, keysMark: string, seq: number, piece: Buffer): string {
    checkPane(pane);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`not a keys number: ${seq}`);
    if (piece.length < 1 || piece.length > KEYS_PER_COMMAND) throw new Error(`not a piece of keys: ${piece.length} bytes`);
    const hex = [...piece].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return `set-environment -h -t =${checkName(name)} ${keysVariable(keysMark)} ${seq} ; send-keys -t ${pane} -H ${hex}`;
  },
  /** The session's pane: its history and screen with their colours, from the oldest line kept. */
  capture: (name: string): string => `capture-pane -p -e -S - -E - -t ${paneOf(name)}`,
  /** The normal screen tmux keeps aside while the pane's alternate screen is active; nothing otherwise (-q). */
  captureNormal: (name: string): string => `capture-pane -a -q -p -e -t ${paneOf(name)}`,
  /**
   * Has tmux hold the pane's output back from this client (tmux 3.2 and later): it keeps
   * reading the pane and drops what it held back, until commands.redraw resumes it.
   */
  pauseOutput: (pane: string): string => `refresh-client -A '${checkPane(pane)}:pause'`,
  /** Sends the pane's output on again, from now on (what was held back is dropped). */
  resumeOutput: (pane: string): string => `refresh-client -A '${checkPane(pane)}:continue'`,
  /**
   * The pane's active screen, after its last `lines` lines of history when `lines` > 0 (then
   * also the normal screen kept aside while the alternate one is active), then its state
   * (commands.cursor), all taken at one instant (a line's commands run together). With
   * `resume`, it first resumes the pane's output held back by commands.pauseOutput. Reply
   * blocks: redrawReplies. Output after the answer is what the pane printed after it.
   */
  redraw(name: string, pane: string, lines: number, resume: boolean): string {
    if (!Number.isInteger(lines) || lines < 0 || lines > 100_000) throw new Error(`not a history length: ${lines}`);
    const target = paneOf(name);
    const captures = [`capture-pane -p -e -S ${lines === 0 ? 0 : -lines} -E - -t ${target}`];
    // With history, the normal screen too, kept aside while the alternate one is active.
    if (lines > 0) captures.push(commands.captureNormal(name));
    const line = [...captures, commands.cursor(name)].join(' ; ');
    return resume ? `${commands.resumeOutput(pane)} ; ${line}` : line;
  },
  /** Where the cursor of the session's pane is (0-based), and what else a redraw needs (PANE_STATE, redrawnScreen). */
  cursor: (name: string): string => `display-message -p -t ${paneOf(name)} '${PANE_STATE.map((f) => `#{${f}}`).join(' ')}'`,
  kill: (name: string): string => `kill-session -t =${checkName(name)}`,
};

/**
 * What commands.cursor asks of a pane: the cursor (0-based), the pane's height and how much
 * history it holds, then the modes of its terminal that a redraw must set again.
 */
const PANE_STATE = [
  'cursor_x',
  'cursor_y',
  'pane_height',
  'history_size',
  'alternate_on',
  'scroll_region_upper',
  'scroll_region_lower',
  'origin_flag',
  'keypad_flag',
  'insert_flag',
  'keypad_cursor_flag',
  'wrap_flag',
  'cursor_flag',
  'mouse_standard_flag',
  'mouse_button_flag',
  'mouse_all_flag',
  'mouse_utf8_flag',
  'mouse_sgr_flag',
] as const;
type PaneState = (typeof PANE_STATE)[number];

/** The modes set by `ESC [ ? N h` (reset by `l`), by their PANE_STATE flag. */
const PRIVATE_MODES: [PaneState, number][] = [
  ['keypad_cursor_flag', 1],
  ['wrap_flag', 7],
  ['cursor_flag', 25],
  ['mouse_standard_flag', 1000],
  ['mouse_button_flag', 1002],
  ['mouse_all_flag', 1003],
  ['mouse_utf8_flag', 1005],
  ['mouse_sgr_flag', 1006],
];

/** A pane as tmux answered commands.capture or commands.redraw. */
export interface PaneCapture {
  /** Its active screen, after its history when that was asked for (with their colours; the screen's trailing blank lines included). */
  lines: string[];
  /** The normal screen tmux keeps aside while the alternate one is active (commands.redraw with history), else none. */
  normal?: string[];
  /** commands.cursor's answer. */
  state: string | undefined;
}

/** commands.cursor's answer, read: only numbers count; a line that does not parse is not `known`. */
function paneState(state: string | undefined): { known: boolean; n(f: PaneState): number; on(f: PaneState): boolean } {
  const values = (state ?? '').trim().split(' ');
  const known = values.length === PANE_STATE.length && values.every((v) => /^\d{0,6}$/.test(v));
  return {
    known,
    n: (f) => (known ? Number(values[PANE_STATE.indexOf(f)] || 0) : 0),
    on: (f) => known && values[PANE_STATE.indexOf(f)] === '1',
  };
}

/** The captured lines that are the pane's active screen: the last `pane_height` of them. */
function screenOf(capture: PaneCapture): string[] {
  const height = Math.min(paneState(capture.state).n('pane_height') || capture.lines.length, capture.lines.length);
  return capture.lines.slice(capture.lines.length - height);
}

/** What a pane shows, as a key: two redraws with the same key found it unchanged (its history size included). */
export function screenKey(capture: PaneCapture): string {
  return `${capture.state ?? ''}\n${screenOf(capture).join('\n')}`;
}

/**
 * How a terminal draws a pane as tmux has it. `over`: the terminal has just been reset (a
 * rejoin, a catch-up with history): its history and normal screen go into the normal buffer,
 * then, if the pane is in it, the alternate screen; history beyond `maxChars` characters is
 * left out, oldest first. `frame`: the active screen is drawn over the terminal's screen (its
 * scrollback stays). Then, from the state line, the scroll region, the modes (application
 * cursor keys and keypad, insert, origin, wrap, a hidden cursor, mouse reporting), and the
 * cursor, its row counted from the top of the screen. Only numbers from tmux are used; a
 * state line that does not parse leaves the modes alone and puts the cursor at the top left.
 */
export function redrawnScreen(capture: PaneCapture, how: 'over' | 'frame', maxChars = Infinity): string {
  const { known, n, on } = paneState(capture.state);
  const screen = screenOf(capture);
  let out: string;
  if (how === 'frame') {
    out = `${known ? (on('alternate_on') ? '\x1b[?1049h' : '\x1b[?1049l') : ''}\x1b[H\x1b[2J${screen.join('\r\n')}`;
  } else {
    const history = capture.lines.slice(0, capture.lines.length - screen.length);
    let chars = screen.reduce((sum, l) => sum + l.length + 2, 0);
    let from = history.length;
    while (from > 0 && chars + history[from - 1]!.length + 2 <= maxChars) chars += history[--from]!.length + 2;
    const kept = history.slice(from);
    out = on('alternate_on')
      ? `${[...kept, ...(capture.normal ?? [])].join('\r\n')}\x1b[0m\x1b[?1049h\x1b[H${screen.join('\r\n')}`
      : [...kept, ...screen].join('\r\n');
  }
  out += '\x1b[0m';
  if (!known) return `${out}\x1b[1;1H`;
  const upper = n('scroll_region_upper');
  const lower = n('scroll_region_lower');
  out += lower > upper ? `\x1b[${upper + 1};${lower + 1}r` : '\x1b[r';
  for (const [flag, mode] of PRIVATE_MODES) out += `\x1b[?${mode}${on(flag) ? 'h' : 'l'}`;
  out += on('keypad_flag') ? '\x1b=' : '\x1b>';
  out += on('insert_flag') ? '\x1b[4h' : '\x1b[4l';
  out += on('origin_flag') ? '\x1b[?6h' : '\x1b[?6l';
  const row = n('cursor_y') - (on('origin_flag') ? upper : 0);
  return `${out}\x1b[${row + 1};${n('cursor_x') + 1}H`;
}

export interface ControlHandlers {
  output(pane: string, data: Buffer): void;
  /** The answer to the oldest command still waiting: its lines, or the error tmux gave. */
  reply(ok: boolean, lines: string[]): void;
  /** The control client is leaving (its session ended, or it was detached). */
  exit(reason: string | null): void;
}

/** Turns tmux's `\ooo` escapes back into the bytes the program wrote. */
export function unescapeOutput(escaped: Buffer): Buffer {
  const out = Buffer.allocUnsafe(escaped.length);
  let n = 0;
  for (let i = 0; i < escaped.length; i++) {
    const b = escaped[i]!;
    if (b === 0x5c && i + 3 < escaped.length && isOctal(escaped[i + 1]) && isOctal(escaped[i + 2]) && isOctal(escaped[i + 3])) {
      out[n++] = ((escaped[i + 1]! - 48) << 6) | ((escaped[i + 2]! - 48) << 3) | (escaped[i + 3]! - 48);
      i += 3;
    } else out[n++] = b;
  }
  return out.subarray(0, n);
}

function isOctal(b: number | undefined): boolean {
  return b !== undefined && b >= 48 && b <= 55;
}

const OUTPUT = Buffer.from('%output ');
const BEGIN = Buffer.from('%begin ');
const END = Buffer.from('%end ');
const ERROR = Buffer.from('%error ');
const EXIT = Buffer.from('%exit');

/** Reads a control client's output stream, line by line, into the handlers. */
export class ControlParser {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The lines of the reply block being read, or null outside a block. */
  private block: string[] | null = null;
  /** The block's `%begin` arguments: only an `%end`/`%error` with the same ones ends it (a pane's text may hold such a line). */
  private blockTag = '';

  constructor(private readonly handlers: ControlHandlers) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      const line = this.pending.length > 0 ? Buffer.concat([...this.pending, piece]) : piece;
      this.pending = [];
      this.pendingBytes = 0;
      this.line(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.pending.push(Buffer.from(chunk.subarray(start)));
      this.pendingBytes += chunk.length - start;
      // tmux escapes every newline a pane writes: a line this long is nothing tmux sends.
      if (this.pendingBytes > MAX_LINE_BYTES) throw new Error('tmux sent a line longer than 16 MiB');
    }
  }

  private line(line: Buffer): void {
    if (this.block !== null) {
      // Inside a reply block, every line is the command's output, but its end.
      const ok = startsWith(line, END) && line.subarray(END.length).toString('latin1') === this.blockTag;
      const failed = startsWith(line, ERROR) && line.subarray(ERROR.length).toString('latin1') === this.blockTag;
      if (ok || failed) {
        const lines = this.block;
        this.block = null;
        this.handlers.reply(ok, lines);
      } else this.block.push(line.toString('utf8'));
      return;
    }
    if (startsWith(line, OUTPUT)) {
      const rest = line.subarray(OUTPUT.length);
      const space = rest.indexOf(32);
      if (space > 0) this.handlers.output(rest.subarray(0, space).toString('latin1'), unescapeOutput(rest.subarray(space + 1)));
    } else if (startsWith(line, BEGIN)) {
      this.block = [];
      this.blockTag = line.subarray(BEGIN.length).toString('latin1');
    }
    else if (startsWith(line, EXIT)) this.handlers.exit(line.length > EXIT.length + 1 ? line.subarray(EXIT.length + 1).toString('utf8') : null);
  }
}

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && line.subarray(0, prefix.length).equals(prefix);
}

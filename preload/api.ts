// The API contract between the UI and the engine: every request with its parameter schema
// and result type, and every event. Both transports (Electron IPC, the web host's WebSocket)
// carry exactly these messages and dispatch them through one router (main/api/router.ts),
// which validates every incoming message against the schemas here.
import { z } from 'zod';

export type { ErrorInfo, Reply, EventMessage, HitchBridge } from './channels';

// ---------------------------------------------------------------------------------------
// Plain data the engine reports. The engine owns this state; the UI only renders it.

export interface HostView {
  /** The alias, unique in the catalog. */
  id: string;
  hostname: string;
  user: string;
  port: number;
  /** From the user's ssh config, or added in Hitch. */
  source: 'ssh-config' | 'app';
  identityFiles: string[];
  proxyJump: string | null;
  /** The master this host's sessions ride on; aliases naming the same destination share one. */
  masterId: string | null;
  /** Why this host cannot be used as configured, if it cannot. */
  error: string | null;
  /** For a host added in Hitch: what was entered (the fields above are as ssh resolves them). */
  saved: { hostname: string; user: string | null; port: number | null; identityFile: string | null; proxyJump: string | null } | null;
}

export type MasterState = 'connecting' | 'authenticating' | 'ready' | 'reconnecting' | 'closed' | 'failed';

export interface MasterView {
  /** `user@host:port`, with ` via …` for hosts reached through ProxyJump. */
  id: string;
  state: MasterState;
  error: { code: string; message: string } | null;
  /** The authentication method(s) that succeeded, once ready, e.g. `publickey+keyboard-interactive`. */
  authMethod: string | null;
  /** SHA256 fingerprint of the server's host key, once verified. */
  hostKeyFingerprint: string | null;
  connectedAt: number | null;
  /** Open sessions over all of this master's connections. */
  sessions: number;
  /** Sessions the server allows per connection (MaxSessions), learned at its first refusal. */
  sessionLimit: number | null;
  /** SSH connections this master holds: more than one once MaxSessions was exceeded. */
  connections: number;
  /** Logging in again needs a person (a typed password or OTP): no automatic reconnect. */
  needsPerson: boolean;
  /** A secret from the OS keychain was used; "forget" removes it. */
  rememberedSecret: boolean;
  /** When the next reconnect attempt is due, while reconnecting. */
  reconnectAt: number | null;
  /** Bytes received and sent over all of this master's connections (sent: null through a jump host). */
  bytesIn: number;
  bytesOut: number | null;
  /** The round trip of the last keepalive, in ms. */
  latencyMs: number | null;
  /** The OpenSSH-compatible control socket stock clients can use (`ssh -S`), once serving. */
  controlPath: string | null;
  /** The last few sessions stock clients ran through the control socket that have ended, newest first. */
  recentExternal: EndedSessionView[];
  /**
   * Durable shells running on the host that no session here carries: left by an earlier run
   * of Hitch, or detached. `session.reopen` brings one into a tab.
   */
  leftRunning: LeftRunningView[];
  /**
   * Why some open sessions' processes are not shown now, e.g. every MaxSessions slot of their
   * connection holds a session, so no process monitor fits there; null when all are shown.
   */
  processesHidden: string | null;
}

/** A durable shell on a host, in Hitch's tmux server there, that no session here carries. */
export interface LeftRunningView {
  /** Its tmux session name (Hitch's own: `hitch-` and 16 hex digits). */
  name: string;
  /** The shell's pid on the host. */
  pid: number;
}

/** What is kept of a stock client's session once it ended: how it ended, not its output. */
export interface EndedSessionView {
  id: string;
  title: string;
  exitCode: number | null;
  exitSignal: string | null;
  endedAt: number;
}

export interface SessionView {
  id: string;
  hostId: string;
  masterId: string;
  kind: 'shell' | 'exec';
  /** The command of an exec session. */
  command: string | null;
  /** `disconnected`: the connection dropped; the output is kept, the remote side is gone. */
  state: 'open' | 'disconnected' | 'closed';
  title: string;
  openedAt: number;
  exitCode: number | null;
  /** The signal that ended the command, as SSH names it: `TERM`, `KILL`, `HUP`… */
  exitSignal: string | null;
  /** The session's first remote process (its shell or command), once known. */
  rootPid: number | null;
  /**
   * Started by a stock OpenSSH client through the master's control socket: its input and output
   * stay with that client (no terminal here), but it is listed, watched and signalled like any other.
   */
  external: boolean;
  /** A `hitch exec` run: its output goes only to the client that ran it; no one else may attach. */
  private: boolean;
  /**
   * A shell that outlives the connection: it runs in tmux on the host, under Hitch's own tmux
   * server, and reconnecting reattaches to it. False for commands and for a shell that is not
   * (`notDurable` says why).
   */
  durable: boolean;
  /** Why a shell is not durable ("install tmux on web1", "durable shells are off"); null otherwise. */
  notDurable: string | null;
  /** Its connection dropped and Hitch is bringing it back: the shell itself is still running. */
  reconnecting: boolean;
  /** It runs on a pty: closing it hangs up its processes; without one a command can be kept running. */
  tty: boolean;
}

/** One remote process under a master's connections. */
export interface ProcessView {
  pid: number;
  ppid: number;
  pgid: number;
  user: string;
  /** `ps` state letters, e.g. `S`, `R+`, `T`. */
  state: string;
  cpu: number;
  rssKb: number;
  /** When it started (ms since the epoch, by this machine's clock, to the second). */
  startedAt: number;
  /** The full command line. */
  command: string;
  /** The session it belongs to, if any. */
  sessionId: string | null;
  /** It outlived its session (reparented, still running): shown under the master. */
  detached: boolean;
}

/** A command's standard output or standard error. */
export type OutputStream = 'stdout' | 'stderr';

/** Every signal Hitch sends: the one list the API, the engine, the CLI and the UI use. */
export const SIGNAL_NAMES = ['TERM', 'INT', 'HUP', 'QUIT', 'KILL', 'USR1', 'USR2', 'STOP', 'CONT'] as const;
export type SignalName = (typeof SIGNAL_NAMES)[number];
/** One process, it and everything below it, or every process of its session. */
export type SignalScope = 'process' | 'tree' | 'session';

export interface SignalOutcome {
  pid: number;
  /**
   * gone: exited after the signal · alive: delivered, still running (as expected for STOP,
   * CONT, USR1…) · killed: gone after the escalation to KILL · still-alive: survived even KILL
   * (or the grace period ended first) · no-such-process · permission-denied · failed.
   */
  outcome: 'gone' | 'alive' | 'killed' | 'still-alive' | 'no-such-process' | 'permission-denied' | 'failed';
}

/** The benchmark's methods, in the order they are reported. */
export const BENCH_METHODS = ['fresh-ssh2', 'hitch-channel', 'hitch-spare', 'openssh-fresh', 'openssh-mux', 'openssh-via-hitch'] as const;
export type BenchMethod = (typeof BENCH_METHODS)[number];

export interface BenchResult {
  method: BenchMethod;
  n: number;
  median_ms: number;
  p95_ms: number;
  min_ms: number;
  max_ms: number;
  /** Median over the fresh connection's median: 0.1 means ten times faster. */
  ratio: number | null;
}

export interface BenchReport {
  hostId: string;
  /** When it ran (ms since the epoch). */
  at: number;
  rounds: number;
  results: BenchResult[];
  /** Methods that could not run here, and why. */
  skipped: { method: BenchMethod; reason: string }[];
}

/** A BenchReport as stored in the history and printed by `hitch bench --json`: checked, never guessed. */
export const benchReportSchema = z.object({
  hostId: z.string(),
  at: z.number(),
  rounds: z.number().int(),
  results: z.array(
    z.object({
      method: z.enum(BENCH_METHODS),
      n: z.number().int(),
      median_ms: z.number(),
      p95_ms: z.number(),
      min_ms: z.number(),
      max_ms: z.number(),
      ratio: z.number().nullable(),
    }),
  ),
  skipped: z.array(z.object({ method: z.enum(BENCH_METHODS), reason: z.string() })),
}) satisfies z.ZodType<BenchReport>;

export interface ProcessTreeView {
  masterId: string;
  processes: ProcessView[];
}

export type PromptKind = 'host-key' | 'password' | 'passphrase' | 'keyboard-interactive' | 'extra-connection' | 'open-link';

export interface PromptView {
  id: string;
  masterId: string;
  kind: PromptKind;
  title: string;
  /** What is asked and why: the server's instructions, a fingerprint, a warning. */
  message: string;
  /** One input per entry; `secret` inputs are not echoed. Host-key and extra-connection prompts have none. */
  fields: { label: string; secret: boolean }[];
  /** Whether "remember in the OS keychain" is offered. */
  canRemember: boolean;
  /** Why remembering is unavailable (no keychain), if it is. */
  keychainProblem: string | null;
}

/** Per catalog host: ControlPath to the master's socket, ControlMaster no (main/engine/control-socket/ssh-config.ts). */
export interface SshConfigSnippet {
  text: string;
  /** Where the text is written when the Include is applied: in Hitch's data directory. */
  path: string;
  hosts: string[];
}

export interface SshConfigInclude {
  /** The ssh config Hitch reads its hosts from: the file the line goes into. */
  configPath: string;
  snippetPath: string;
  /** The line added at the top of the config: `Include <snippet path>`. */
  line: string;
  /** The config already has it: nothing to change. */
  alreadyIncluded: boolean;
  /** The change was made now (only ever with apply: true). */
  applied: boolean;
  /** The config's first lines after the change, for the person to see before applying. */
  preview: string;
}

/** The person's settings (main/engine/config/settings.ts holds their schema and defaults). */
export interface SettingsView {
  idleTimeoutMinutes: number | null;
  keepaliveSeconds: number;
  keepaliveCountMax: number;
  processRefreshSeconds: number;
  spareChannel: boolean;
  theme: 'system' | 'light' | 'dark';
  terminalFontFamily: string;
  terminalFontSize: number;
  closeToTray: boolean;
  notifications: boolean;
  recentHosts: string[];
  /** Shells outlive the connection where the host has tmux (see SessionView.durable). */
  durableShells: boolean;
  /** Hosts whose shells are ordinary ones even so. */
  notDurableHosts: string[];
  /**
   * Favourite hosts kept warm: their master connects when Hitch starts and after a wake, in
   * the background, when logging in needs nobody (a key or agent, a known host key).
   */
  warmHosts: string[];
}

// ---------------------------------------------------------------------------------------
// Ports and files over the master (issue 15)

/** local (`-L`): this computer listens, the server connects onward · remote (`-R`): the server listens, this computer connects onward · dynamic (`-D`): a SOCKS 4/4a/5 proxy here, connecting through the server. */
export const FORWARD_KINDS = ['local', 'remote', 'dynamic'] as const;
export type ForwardKind = (typeof FORWARD_KINDS)[number];

export interface ForwardView {
  /** `f1`, `f2`…: unique in this engine's run. */
  id: string;
  /** The host alias it was asked for (a stock client's: the master's first alias). */
  hostId: string;
  masterId: string;
  kind: ForwardKind;
  /**
   * Where it listens (on this computer for local and dynamic, on the server for remote), as
   * asked: `localhost` (the default, loopback only), an address, or `*` for every address.
   */
  bindAddress: string;
  /** The port asked for; 0: any free port (see boundPort). */
  listenPort: number;
  /** The port actually listened on, while active. */
  boundPort: number | null;
  /** Where connections go, as the far side resolves it; null for dynamic. */
  connectHost: string | null;
  connectPort: number | null;
  /**
   * active: listening and carrying connections · waiting: the master is reconnecting or not
   * connected, and it comes back with it · failed: it could not be set up (`error` says why:
   * a port already in use, a refused remote listen).
   */
  state: 'active' | 'waiting' | 'failed';
  error: string | null;
  /** Asked for in Hitch (the app, `hitch forward`), or by a stock client through the control socket (`ssh -O forward`). */
  origin: 'hitch' | 'control-socket';
  /** Kept with the host: set up again whenever its master connects, also after a restart. */
  saved: boolean;
  /** Connections being carried now, and since it was set up. */
  connections: number;
  totalConnections: number;
  /** Bytes carried towards this computer's side (in) and towards the server's side (out). */
  bytesIn: number;
  bytesOut: number;
}

export interface FileEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  /** Last modified, ms since the epoch. */
  mtime: number;
  /** Unix mode bits (permissions and type), as the server reports them. */
  mode: number;
  /** As `ls -l` shows them, e.g. `drwxr-xr-x`. */
  permissions: string;
  uid: number;
  gid: number;
}

export interface DirectoryView {
  hostId: string;
  /** Absolute, as the server resolved it. */
  path: string;
  entries: FileEntry[];
}

export interface TransferView {
  /** `t1`, `t2`…: unique in this engine's run. */
  id: string;
  hostId: string;
  direction: 'upload' | 'download';
  /** A path on this computer; null when the other end is a browser (the web host's upload and download). */
  localPath: string | null;
  remotePath: string;
  /** The file's name, for display. */
  name: string;
  /** Total bytes, once known. */
  size: number | null;
  /** Bytes done, contiguous from the start (a resume starts here). */
  done: number;
  /**
   * queued: waits for its turn · running · waiting: the master dropped, it resumes where it
   * stopped once the master is back · done · failed (`error`) · cancelled.
   */
  state: 'queued' | 'running' | 'waiting' | 'done' | 'failed' | 'cancelled';
  error: string | null;
  /** Recent speed, bytes per second, while running. */
  bytesPerSecond: number;
  startedAt: number;
  endedAt: number | null;
  /** How many times it resumed after an interruption. */
  resumes: number;
}

/** A transfer that will not change any more: done, failed or cancelled. */
export function transferEnded(view: Pick<TransferView, 'state'>): boolean {
  return view.state === 'done' || view.state === 'failed' || view.state === 'cancelled';
}

export interface CatalogView {
  hosts: HostView[];
  /** The ssh config file the catalog was read from. */
  configPath: string;
  /** Problems with the config as a whole: unreadable, malformed, `ssh` missing. */
  warnings: string[];
}

export interface Snapshot {
  catalog: CatalogView;
  masters: MasterView[];
  sessions: SessionView[];
  prompts: PromptView[];
  forwards: ForwardView[];
  transfers: TransferView[];
}

// ---------------------------------------------------------------------------------------
// Requests

const hostId = z.string().min(1).max(255).regex(/^[^\s\0]+$/, 'a host alias has no spaces');
const promptId = z.string().regex(/^p[1-9][0-9]{0,9}$/, 'not a prompt id');
const pid = z.number().int().min(2).max(0x3fffffff);
const signalName = z.enum(SIGNAL_NAMES);
const signalScope = z.enum(['process', 'tree', 'session']);
const sessionId = z.string().regex(/^s[1-9][0-9]{0,9}$/, 'not a session id');
const cols = z.number().int().min(2).max(1000);
const rows = z.number().int().min(1).max(1000);
const forwardId = z.string().regex(/^f[1-9][0-9]{0,9}$/, 'not a forward id');
const transferId = z.string().regex(/^t[1-9][0-9]{0,9}$/, 'not a transfer id');
/** A host name or address as a forward binds or connects to it: no spaces, no control characters. */
export const netHost = z.string().min(1).max(255).regex(/^[A-Za-z0-9._:*%\[\]-]+$/, 'not a host name or address');
const port0 = z.number().int().min(0).max(65535);
const port1 = z.number().int().min(1).max(65535);
/** A path on the host as SFTP takes it (never given to a shell). */
const remotePath = z.string().min(1).max(4096).regex(/^[^\0]*$/, 'a path has no NUL characters');

export const requestSchemas = {
  /**
   * Names this client with a key it keeps across its own reloads (a page's sessionStorage):
   * the sessions a client with that key held, if it went only seconds ago, are this one's
   * again. Answers with them. A new key starts a new client.
   */
  'client.identify': z.object({ key: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/, 'a key is 16 to 128 characters of A-Z, a-z, 0-9, _ and -') }).strict(),
  /** Everything the UI shows. `watch`: from now on, also the state events that keep it current. */
  'state.get': z.object({ watch: z.boolean().optional() }).strict(),
  'hosts.reload': z.object({}).strict(),
  /** Hosts added in Hitch; the engine checks each field (see main/engine/config/host-store.ts). */
  'hosts.add': z.object({ host: z.record(z.string(), z.unknown()) }).strict(),
  'hosts.update': z.object({ hostId, patch: z.record(z.string(), z.unknown()) }).strict(),
  'hosts.remove': z.object({ hostId }).strict(),
  'master.connect': z.object({ hostId }).strict(),
  'master.disconnect': z.object({ hostId }).strict(),
  /**
   * Probes every connected master at once with a short deadline (after the computer woke or
   * the network changed): a dead one is found at once and reconnects. The engine does it by
   * itself when it notices it was not running for a while.
   */
  'masters.probe': z.object({}).strict(),
  'session.open': z.object({ hostId, cols, rows }).strict(),
  /**
   * An ssh:// link from outside Hitch (a web page, another app): a session on the host it
   * names. A host Hitch does not know yet is added only after the person confirms, in a prompt
   * showing exactly where it will connect.
   */
  'link.open': z.object({ url: z.string().min(1).max(2048), cols, rows }).strict(),
  /**
   * Runs one command, like `ssh host command`: the command is the user's, passed verbatim.
   * `raw`: output as bytes (base64 in `session.data`, offsets in bytes), for callers that pass
   * it on byte for byte, like the `hitch` command. Without it, output is UTF-8 text.
   */
  'session.exec': z
    .object({ hostId, command: z.string().min(1).max(8192), cols, rows, pty: z.boolean(), raw: z.boolean().optional() })
    .strict(),
  /** `encoding: 'base64'`: `data` is bytes in base64 (binary input); text otherwise. Answered once the channel takes it. */
  'session.write': z
    .object({ sessionId, data: z.string().max(65536), encoding: z.enum(['utf8', 'base64']).optional() })
    .strict()
    .refine((p) => p.encoding !== 'base64' || /^[A-Za-z0-9+/]*={0,2}$/.test(p.data), { message: 'not base64', path: ['data'] }),
  /** Ends the input of an exec session, as closing its stdin does. */
  'session.eof': z.object({ sessionId }).strict(),
  'session.resize': z.object({ sessionId, cols, rows }).strict(),
  /** `keep`: leave a command without a terminal running (it then shows as detached). */
  'session.close': z.object({ sessionId, keep: z.boolean().optional() }).strict(),
  /**
   * Streams the session to this client: answers with its output so far (the scrollback) and
   * the offset it ends at; `session.data` and `session.changed` for it follow, from there on.
   * Opening a session attaches its opener. Refused for another client's `hitch exec` run.
   * `ack`: this client acknowledges the output it has drawn (`session.ack`), and the session
   * waits while too much of what was sent it is unacknowledged (TERMINAL_FLOW); clients that
   * do not ask (the `hitch` command) are held only by their transport.
   */
  'session.attach': z.object({ sessionId, ack: z.boolean().optional() }).strict(),
  /**
   * This many more characters of the session's output (counted as `session.data` strings'
   * length, from the attach on) were drawn: for a client attached with `ack`.
   */
  'session.ack': z.object({ sessionId, chars: z.number().int().min(1).max(1_000_000_000) }).strict(),
  /** Opens a durable shell left running on the host (MasterView.leftRunning) as a session of this client. */
  'session.reopen': z.object({ hostId, name: z.string().regex(/^hitch-[0-9a-f]{16}$/, 'not a durable shell name'), cols, rows }).strict(),
  /** Stops streaming the session to this client; the session goes on. */
  'session.detach': z.object({ sessionId }).strict(),
  'prompt.answer': z
    .object({
      promptId,
      answers: z.array(z.string().max(8192)).max(16),
      remember: z.boolean(),
      choice: z.enum(['once', 'always']).nullable(),
    })
    .strict(),
  'prompt.cancel': z.object({ promptId }).strict(),
  /** Removes the host's remembered password and key passphrases from the OS keychain. */
  'secrets.forget': z.object({ hostId }).strict(),
  'processes.get': z.object({ hostId }).strict(),
  /** Refreshes the host's process tree every `intervalMs`; lapses unless asked again within 3 intervals. */
  'processes.watch': z.object({ hostId, intervalMs: z.number().int().min(250).max(60_000) }).strict(),
  /** Targets must be in the host's current tree; nothing is sent otherwise. */
  'processes.signal': z.object({ hostId, pid, signal: signalName, scope: signalScope }).strict(),
  /** "Stop job": TERM, then KILL after `graceMs` for what is still alive. */
  'processes.stop': z.object({ hostId, pid, scope: signalScope, graceMs: z.number().int().min(0).max(600_000) }).strict(),
  /** Measures what multiplexing saves on this host; progress arrives as `bench.progress`. */
  'settings.get': z.object({}).strict(),
  /** Each field is checked against the settings schema by the engine. */
  'settings.update': z.object({ patch: z.record(z.string(), z.unknown()) }).strict(),
  'bench.run': z.object({ hostId, rounds: z.number().int().min(1).max(500) }).strict(),
  'bench.cancel': z.object({ hostId }).strict(),
  'bench.history': z.object({ hostId }).strict(),
  'bench.export': z.object({ hostId, format: z.enum(['json', 'csv']) }).strict(),
  /** Every forward, or one host's (its master's). */
  'forwards.list': z.object({ hostId: hostId.optional() }).strict(),
  /**
   * Sets up a forward on the host's master (connecting it if needed). `bindAddress` defaults
   * to `localhost` (loopback only); `connectHost`/`connectPort` are required except for
   * dynamic. `save`: kept with the host and set up again whenever its master connects. A port
   * already in use is an error (code `port-in-use`), never a silent failure.
   */
  'forwards.open': z
    .object({
      hostId,
      kind: z.enum(FORWARD_KINDS),
      bindAddress: netHost.optional(),
      listenPort: port0,
      connectHost: netHost.optional(),
      connectPort: port1.optional(),
      save: z.boolean().optional(),
    })
    .strict()
    .refine((p) => p.kind === 'dynamic' || (p.connectHost !== undefined && p.connectPort !== undefined), {
      message: 'a local or remote forward needs connectHost and connectPort',
      path: ['connectHost'],
    })
    .refine((p) => p.kind !== 'dynamic' || (p.connectHost === undefined && p.connectPort === undefined), {
      message: 'a dynamic forward connects where each SOCKS request asks: no connectHost or connectPort',
      path: ['connectHost'],
    }),
  /** Ends a forward (connections it carries now go on, as with OpenSSH) and forgets it if saved. */
  'forwards.cancel': z.object({ forwardId }).strict(),
  /** Keeps a forward with its host (set up again whenever the master connects), or stops keeping it. */
  'forwards.save': z.object({ forwardId, saved: z.boolean() }).strict(),
  /** A directory on the host, over SFTP on the master; `path` relative to the login directory ('.' is it). */
  'files.list': z.object({ hostId, path: remotePath }).strict(),
  'files.mkdir': z.object({ hostId, path: remotePath }).strict(),
  /** Fails (code `exists`) rather than replace an existing `to`. */
  'files.rename': z.object({ hostId, from: remotePath, to: remotePath }).strict(),
  /** A file, a symlink, or a directory with everything in it (the UI asks first). */
  'files.delete': z.object({ hostId, path: remotePath }).strict(),
  /** The working directory of the session's shell, read on the host (nothing is typed into the shell). */
  'files.cwd': z.object({ sessionId }).strict(),
  /**
   * Copies a file between this computer and the host over SFTP on the master, queued, with
   * `transfer.changed` events for progress. `ifExists`: what to do when the destination is
   * there: `fail` (the default; code `exists`), `replace`, or `resume` (go on from the part
   * file an interrupted copy left, or else from the destination's own end, in place). An interrupted transfer resumes where it stopped once the master is back.
   * `exact`: the destination is the file's own path, never a directory to put it in; a
   * directory or a symlink there is refused (`exists`) rather than gone into (`hitch cp -r`).
   */
  'transfer.start': z
    .object({
      hostId,
      direction: z.enum(['upload', 'download']),
      localPath: z.string().min(1).max(4096).regex(/^\/[^\0]*$/, 'an absolute path on this computer'),
      remotePath,
      ifExists: z.enum(['fail', 'replace', 'resume']).optional(),
      exact: z.boolean().optional(),
    })
    .strict(),
  'transfer.cancel': z.object({ transferId }).strict(),
  /** Transfers under way and recently ended. */
  'transfers.list': z.object({}).strict(),
  /** An ssh_config text that sends plain ssh, scp, rsync and git through Hitch's control sockets. */
  'ssh-config.snippet': z.object({}).strict(),
  /** Shows (apply: false) or makes (apply: true) the one-line change that Includes that text in the ssh config. */
  'ssh-config.include': z.object({ apply: z.boolean() }).strict(),
} as const;

export type Method = keyof typeof requestSchemas;
export type Params<M extends Method> = z.infer<(typeof requestSchemas)[M]>;

export interface Results {
  'client.identify': { sessions: SessionView[] };
  'state.get': Snapshot;
  'hosts.reload': CatalogView;
  'hosts.add': CatalogView;
  'hosts.update': CatalogView;
  'hosts.remove': CatalogView;
  'master.connect': MasterView;
  'master.disconnect': null;
  'masters.probe': { masters: { masterId: string; answered: boolean }[] };
  'session.open': SessionView;
  /** The session opened, or null when the person declined the link. */
  'link.open': SessionView | null;
  'session.exec': SessionView;
  'session.write': null;
  'session.eof': null;
  'session.resize': null;
  'session.close': null;
  /** The session's recent output, and the output offset it ends at (see `session.data`). */
  'session.attach': { data: string; end: number; encoding?: 'base64' };
  'session.ack': null;
  'session.detach': null;
  'session.reopen': SessionView;
  'prompt.answer': null;
  'prompt.cancel': null;
  /** How many secrets were removed. */
  'secrets.forget': { removed: number };
  'processes.get': ProcessTreeView;
  'processes.watch': null;
  'processes.signal': { outcomes: SignalOutcome[] };
  'processes.stop': { outcomes: SignalOutcome[] };
  'settings.get': { settings: SettingsView; warning: string | null };
  'settings.update': SettingsView;
  'bench.run': BenchReport;
  'bench.cancel': null;
  'bench.history': { reports: BenchReport[] };
  'bench.export': { filename: string; mime: string; text: string };
  'ssh-config.snippet': SshConfigSnippet;
  'ssh-config.include': SshConfigInclude;
  'forwards.list': { forwards: ForwardView[] };
  'forwards.open': ForwardView;
  'forwards.cancel': null;
  'forwards.save': ForwardView;
  'files.list': DirectoryView;
  /** The absolute path made. */
  'files.mkdir': { path: string };
  'files.rename': null;
  'files.delete': null;
  /** Absolute. */
  'files.cwd': { path: string };
  'transfer.start': TransferView;
  'transfer.cancel': null;
  'transfers.list': { transfers: TransferView[] };
}

export type Result<M extends Method> = Results[M];

export const methods = Object.keys(requestSchemas) as Method[];

export function isMethod(name: unknown): name is Method {
  return typeof name === 'string' && Object.hasOwn(requestSchemas, name);
}

/**
 * Flow control between a terminal view and a session (VS Code's terminal is the anchor): the
 * view acknowledges what it has drawn in steps of `ackChars`; past `highChars` sent and not
 * acknowledged the session's output waits (its SSH channel is not read, so the server's
 * window stops the remote side), and goes on once the view is back under `lowChars`.
 * Deeper than VS Code's 100k/5k: there a local pty answers a resume at once, here the view
 * would sit idle while the resume goes through the web host and the engine and the next
 * output comes back; resuming at half keeps it drawing (a 15 MB flood in Chromium: 4.9-5.3 s
 * against 5.9-6.4 s with 100k/5k, side by side). A durable shell's output is not stopped but
 * skipped while the view is behind, and the view redrawn from tmux once it is back
 * (DurableShell.catchUp): nothing is gained by drawing much of it first, so it is held past
 * `skipHighChars` and goes on under `skipLowChars` (its flood's slowest frames: 67-83 ms
 * with 400k, 33-50 ms with 100k).
 */
export const TERMINAL_FLOW = { ackChars: 20_000, highChars: 400_000, lowChars: 200_000, skipHighChars: 100_000, skipLowChars: 50_000 } as const;

// ---------------------------------------------------------------------------------------
// Events (engine → UI)

export interface Events {
  'catalog.changed': CatalogView;
  'master.changed': MasterView;
  'session.changed': SessionView;
  /** Terminal output; `offset` counts the characters of this session's output before `data`. */
  'session.data': {
    sessionId: string;
    offset: number;
    /** Text; the bytes of a raw exec session (see `encoding`). */
    data: string | Uint8Array;
    /** Which of the command's outputs it came from (a pty merges both into stdout). */
    stream: OutputStream;
    /**
     * Raw exec sessions, whose `offset` counts bytes: `base64`, `data` is the bytes in base64
     * (JSON transports); `bytes`, `data` is the bytes themselves (the engine socket's binary
     * frames, for a client that asked for them; inside the engine, before a transport).
     */
    encoding?: 'base64' | 'bytes';
    /** The terminal starts over: clear it, then write `data` (a durable shell redrawn after reconnecting). */
    reset?: true;
  };
  /** The session was closed by the user and is gone from the engine. */
  'session.removed': { sessionId: string };
  'prompt.opened': PromptView;
  'bench.progress': { hostId: string; done: number; total: number; method: BenchMethod };
  'settings.changed': SettingsView;
  /** From the desktop shell, not the engine: bring this session to the front (tray, ssh:// link). */
  'ui.show-session': { sessionId: string };
  /** What changed in a master's process tree since the last event: only the difference. */
  'processes.changed': { masterId: string; upserted: ProcessView[]; removed: number[] };
  'prompt.closed': { promptId: string };
  'forward.changed': ForwardView;
  'forward.removed': { forwardId: string };
  /** Progress and state; while running, at most a few times a second. */
  'transfer.changed': TransferView;
}

export type EventName = keyof Events;
export type HitchEvent = { [E in EventName]: { event: E; payload: Events[E] } }[EventName];

// ---------------------------------------------------------------------------------------
// The web host's WebSocket envelope. Electron IPC carries method and params as arguments.

export const wsRequestSchema = z
  .object({
    id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    method: z.string().max(64),
    params: z.unknown(),
  })
  .strict();

export type WsRequest = z.infer<typeof wsRequestSchema>;

// What `hitch COMMAND --json` prints: one JSON object per command, checked against these
// schemas before it is printed (fields the engine adds later are left out, never guessed).
// Scripts and the tests can rely on exactly these shapes.
import { z } from 'zod';
import { benchReportSchema, FORWARD_KINDS, SIGNAL_NAMES } from '../../preload/api';

const masterState = z.enum(['connecting', 'authenticating', 'ready', 'reconnecting', 'closed', 'failed']);
const signalName = z.enum(SIGNAL_NAMES);
const signalScope = z.enum(['process', 'tree', 'session']);
const outcome = z.enum(['gone', 'alive', 'killed', 'still-alive', 'no-such-process', 'permission-denied', 'failed']);

export const hostSchema = z.object({
  id: z.string(),
  hostname: z.string(),
  user: z.string(),
  port: z.number().int(),
  source: z.enum(['ssh-config', 'app']),
  proxyJump: z.string().nullable(),
  masterId: z.string().nullable(),
  error: z.string().nullable(),
});

export const masterSchema = z.object({
  id: z.string(),
  state: masterState,
  /** Open sessions, and the server's MaxSessions per connection once learned. */
  sessions: z.number().int().min(0),
  sessionLimit: z.number().int().nullable(),
  connections: z.number().int().min(0),
  authMethod: z.string().nullable(),
  hostKeyFingerprint: z.string().nullable(),
  controlPath: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});

export const sessionSchema = z.object({
  id: z.string(),
  hostId: z.string(),
  masterId: z.string(),
  kind: z.enum(['shell', 'exec']),
  command: z.string().nullable(),
  state: z.enum(['open', 'disconnected', 'closed']),
  openedAt: z.number(),
  exitCode: z.number().int().nullable(),
  exitSignal: z.string().nullable(),
  rootPid: z.number().int().nullable(),
});

export const processSchema = z.object({
  pid: z.number().int(),
  ppid: z.number().int(),
  pgid: z.number().int(),
  user: z.string(),
  state: z.string(),
  cpu: z.number(),
  rssKb: z.number(),
  startedAt: z.number(),
  command: z.string(),
  sessionId: z.string().nullable(),
  detached: z.boolean(),
  /** Depth below the group's top process (0), for indenting. */
  depth: z.number().int().min(0),
});

export const lsOutputSchema = z.object({
  hosts: z.array(hostSchema),
  masters: z.array(masterSchema),
  sessions: z.array(sessionSchema),
});

export const connectOutputSchema = z.object({ host: z.string(), master: masterSchema });

export const disconnectOutputSchema = z.object({ host: z.string(), masterId: z.string().nullable(), disconnected: z.literal(true) });

export const execOutputSchema = z.object({
  host: z.string(),
  sessionId: z.string(),
  command: z.string(),
  exitCode: z.number().int().nullable(),
  exitSignal: z.string().nullable(),
  /** hitch's own exit status: the exit code, 128 + the signal's number, or 255. */
  status: z.number().int().min(0).max(255),
  /** The output as UTF-8 text; binary output is for plain (streamed) mode. */
  stdout: z.string(),
  stderr: z.string(),
});

export const psOutputSchema = z.object({
  host: z.string(),
  masterId: z.string(),
  /** As the app's process panel shows them: each open session, then the detached, then the rest. */
  groups: z.array(
    z.object({
      kind: z.enum(['session', 'detached', 'other']),
      sessionId: z.string().nullable(),
      title: z.string(),
      processes: z.array(processSchema),
    }),
  ),
});

export const killOutputSchema = z.object({
  host: z.string(),
  pid: z.number().int(),
  signal: signalName,
  scope: signalScope,
  /** Set when TERM escalates to KILL after this many seconds. */
  graceSeconds: z.number().nullable(),
  outcomes: z.array(z.object({ pid: z.number().int(), outcome })),
  /** A plain signal reached every target (gone or alive); with a grace period, every target is gone. */
  ok: z.boolean(),
});

export const socketOutputSchema = z.object({ host: z.string(), masterId: z.string(), controlPath: z.string() });

export const benchOutputSchema = benchReportSchema;

export const daemonOutputSchema = z.object({ socket: z.string(), pid: z.number().int() });

/** `hitch sessions HOST`: the host's sessions here, and durable shells left running on it. */
export const sessionsOutputSchema = z.object({
  host: z.string(),
  sessions: z.array(
    z.object({
      /** A session id (`s12`), or for a shell no session here carries, its tmux name. */
      id: z.string(),
      kind: z.enum(['shell', 'exec']),
      durable: z.boolean(),
      /** `detached`: a durable shell running on the host that no session here carries. */
      state: z.enum(['open', 'reconnecting', 'disconnected', 'closed', 'detached']),
      rootPid: z.number().int().nullable(),
      command: z.string().nullable(),
    }),
  ),
});

/** A port forward, as `forwards.list` shows it (preload/api.ts ForwardView). */
export const forwardSchema = z.object({
  id: z.string(),
  hostId: z.string(),
  masterId: z.string(),
  kind: z.enum(FORWARD_KINDS),
  bindAddress: z.string(),
  listenPort: z.number().int(),
  boundPort: z.number().int().nullable(),
  connectHost: z.string().nullable(),
  connectPort: z.number().int().nullable(),
  state: z.enum(['active', 'waiting', 'failed']),
  error: z.string().nullable(),
  origin: z.enum(['hitch', 'control-socket']),
  saved: z.boolean(),
  connections: z.number().int().min(0),
  totalConnections: z.number().int().min(0),
  bytesIn: z.number().int().min(0),
  bytesOut: z.number().int().min(0),
});

/** `hitch forward HOST …`: the forwards opened, listed or cancelled. */
export const forwardOutputSchema = z.object({ host: z.string(), forwards: z.array(forwardSchema) });

/** `hitch cp`: each file copied, in order. */
export const cpOutputSchema = z.object({
  transfers: z.array(
    z.object({
      /** The engine's transfer id (`t3`). */
      id: z.string(),
      direction: z.enum(['upload', 'download']),
      host: z.string(),
      /** `HOST:/absolute/path` on the host's side, an absolute path on this computer's. */
      source: z.string(),
      destination: z.string(),
      /** The file's size: every byte of it was copied. */
      bytes: z.number().int().min(0),
      /** From queued to done. */
      ms: z.number().int().min(0),
      /** How many times it went on after the connection dropped. */
      resumes: z.number().int().min(0),
    }),
  ),
});

export const outputSchemas = {
  ls: lsOutputSchema,
  connect: connectOutputSchema,
  disconnect: disconnectOutputSchema,
  exec: execOutputSchema,
  ps: psOutputSchema,
  kill: killOutputSchema,
  socket: socketOutputSchema,
  sessions: sessionsOutputSchema,
  bench: benchOutputSchema,
  daemon: daemonOutputSchema,
  forward: forwardOutputSchema,
  cp: cpOutputSchema,
} as const;

export type CommandName = keyof typeof outputSchemas;
export type Output<C extends CommandName> = z.infer<(typeof outputSchemas)[C]>;

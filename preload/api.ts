// The API contract between the UI and the engine: every request with its parameter schema
// and result type, and every event. Both transports (Electron IPC, the web host's WebSocket)
// carry exactly these messages and dispatch them through one router (main/api/router.ts),
// which validates every incoming message against the schemas here.
import { z } from 'zod';

export type { ErrorInfo, Reply, EventMessage, HitchBridge } from './channels';

// ---------------------------------------------------------------------------------------
// Plain data the engine reports. The engine owns this state; the UI only renders it.

export interface HostView {
  /** The alias from the ssh config, unique in the catalog. */
  id: string;
  hostname: string;
  user: string;
  port: number;
  source: 'ssh-config';
  identityFiles: string[];
  proxyJump: string | null;
  /** Why this host cannot be used as configured, if it cannot. */
  error: string | null;
}

export type MasterState = 'connecting' | 'authenticating' | 'ready' | 'closed' | 'failed';

export interface MasterView {
  hostId: string;
  state: MasterState;
  error: { code: string; message: string } | null;
  /** The authentication method that succeeded, once ready. */
  authMethod: string | null;
  /** SHA256 fingerprint of the server's host key, once verified. */
  hostKeyFingerprint: string | null;
  connectedAt: number | null;
  sessions: number;
}

export interface SessionView {
  id: string;
  hostId: string;
  kind: 'shell';
  state: 'open' | 'closed';
  title: string;
  openedAt: number;
  exitCode: number | null;
  exitSignal: string | null;
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
}

// ---------------------------------------------------------------------------------------
// Requests

const hostId = z.string().min(1).max(255).regex(/^[^\s\0]+$/, 'a host alias has no spaces');
const sessionId = z.string().regex(/^s[1-9][0-9]{0,9}$/, 'not a session id');
const cols = z.number().int().min(2).max(1000);
const rows = z.number().int().min(1).max(1000);

export const requestSchemas = {
  'state.get': z.object({}).strict(),
  'hosts.reload': z.object({}).strict(),
  'master.connect': z.object({ hostId }).strict(),
  'master.disconnect': z.object({ hostId }).strict(),
  'session.open': z.object({ hostId, cols, rows }).strict(),
  'session.write': z.object({ sessionId, data: z.string().max(65536) }).strict(),
  'session.resize': z.object({ sessionId, cols, rows }).strict(),
  'session.close': z.object({ sessionId }).strict(),
  'session.replay': z.object({ sessionId }).strict(),
} as const;

export type Method = keyof typeof requestSchemas;
export type Params<M extends Method> = z.infer<(typeof requestSchemas)[M]>;

export interface Results {
  'state.get': Snapshot;
  'hosts.reload': CatalogView;
  'master.connect': MasterView;
  'master.disconnect': null;
  'session.open': SessionView;
  'session.write': null;
  'session.resize': null;
  'session.close': null;
  /** The session's recent output, and the output offset it ends at (see `session.data`). */
  'session.replay': { data: string; end: number };
}

export type Result<M extends Method> = Results[M];

export const methods = Object.keys(requestSchemas) as Method[];

export function isMethod(name: unknown): name is Method {
  return typeof name === 'string' && Object.hasOwn(requestSchemas, name);
}

// ---------------------------------------------------------------------------------------
// Events (engine → UI)

export interface Events {
  'catalog.changed': CatalogView;
  'master.changed': MasterView;
  'session.changed': SessionView;
  /** Terminal output; `offset` counts the characters of this session's output before `data`. */
  'session.data': { sessionId: string; offset: number; data: string };
  /** The session was closed by the user and is gone from the engine. */
  'session.removed': { sessionId: string };
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

// The bridge every transport offers the renderer. Kept free of imports so the sandboxed
// preload bundle stays tiny; the schemas that give `method` and `params` their meaning are
// in ./api.ts and are enforced by the router in the main process, never trusted here.

/** Electron IPC channel names. */
export const CALL_CHANNEL = 'hitch:call';
export const EVENT_CHANNEL = 'hitch:event';

export type ErrorCode =
  | 'bad-request' // a message that does not match the API contract
  | 'unknown-host' // no such host in the catalog
  | 'unknown-session'
  | 'not-connected'
  | 'config' // the ssh config cannot be read or is malformed
  | 'dns' // the host name does not resolve
  | 'refused' // nothing listens on that port
  | 'timeout' // no answer in time
  | 'network' // the connection broke
  | 'auth' // every authentication method failed
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'host-key-revoked'
  | 'channel' // the server refused a session channel
  | 'max-sessions' // the server refused a session past its MaxSessions
  | 'cancelled' // the person cancelled a login prompt
  | 'forbidden' // the caller may not use this engine (another user)
  | 'keychain' // the OS keychain cannot be reached or refused the request
  | 'port-in-use' // a forward's port is taken already
  | 'exists' // the destination is there already, and replacing it was not asked
  | 'not-found' // no such file or directory on that side
  | 'permission-denied' // the file system (or the server) refused
  | 'sftp' // the host's SFTP server failed or is missing
  | 'internal';

export interface ErrorInfo {
  /** Stable machine-readable reason, e.g. `auth`, `dns`, `host-key-changed`: one of ErrorCode, on every transport. */
  code: ErrorCode;
  /** One clear sentence for the user. */
  message: string;
}

export type Reply = { ok: true; result: unknown } | { ok: false; error: ErrorInfo };

export interface EventMessage {
  event: string;
  payload: unknown;
}

/** Electron IPC channel of the desktop's folder chooser (DesktopFiles.chooseFolder). */
export const CHOOSE_FOLDER_CHANNEL = 'hitch:choose-folder';

/**
 * What only the desktop app can do for the file browser: its transfers name files on this
 * computer (`transfer.start` takes local paths), where a browser only has its own file drop
 * and downloads (the web host's file routes).
 */
export interface DesktopFiles {
  /** The path on this computer of a file dropped or picked in the page. */
  pathForFile(file: File): string;
  /** Asks the person for a folder to download into; null when they cancel. */
  chooseFolder(): Promise<string | null>;
}

/** What `window.hitch` is in Electron, and what the WebSocket client implements in a browser. */
export interface HitchBridge {
  call(method: string, params: unknown): Promise<Reply>;
  /** Subscribes to engine events; returns the unsubscribe function. */
  onEvent(listener: (event: EventMessage) => void): () => void;
  /** Present in the desktop app only. */
  files?: DesktopFiles;
}

/** The web host's plain-HTTP file routes (main/web/file-endpoints.ts), used by pages in a browser. */
export const FILE_ROUTES = { download: '/files/download', upload: '/files/upload', ticket: '/files/ticket' } as const;

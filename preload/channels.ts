// The bridge every transport offers the renderer. Kept free of imports so the sandboxed
// preload bundle stays tiny; the schemas that give `method` and `params` their meaning are
// in ./api.ts and are enforced by the router in the main process, never trusted here.

/** Electron IPC channel names. */
export const CALL_CHANNEL = 'hitch:call';
export const EVENT_CHANNEL = 'hitch:event';

export interface ErrorInfo {
  /** Stable machine-readable reason, e.g. `auth`, `dns`, `host-key-changed`. */
  code: string;
  /** One clear sentence for the user. */
  message: string;
}

export type Reply = { ok: true; result: unknown } | { ok: false; error: ErrorInfo };

export interface EventMessage {
  event: string;
  payload: unknown;
}

/** What `window.hitch` is in Electron, and what the WebSocket client implements in a browser. */
export interface HitchBridge {
  call(method: string, params: unknown): Promise<Reply>;
  /** Subscribes to engine events; returns the unsubscribe function. */
  onEvent(listener: (event: EventMessage) => void): () => void;
}

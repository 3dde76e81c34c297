// Picks the transport: Electron's preload bridge when present, else the web host's WebSocket.
// Both implement the same HitchBridge, so nothing above this file knows which one it has.
import type { EventMessage, HitchBridge, Reply } from '../../../preload/channels';

declare global {
  interface Window {
    hitch?: HitchBridge;
  }
}

const TOKEN_KEY = 'hitch.token';

/** Synthetic event the UI receives when the web host goes away. */
export const TRANSPORT_CLOSED = 'transport.closed';

export function connectBridge(): { ok: true; bridge: HitchBridge } | { ok: false; error: string } {
  if (window.hitch) return { ok: true, bridge: window.hitch };
  // The token arrives in the URL the web host printed; keep it for reloads of this tab only
  // and take it out of the address bar and history.
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    return { ok: false, error: 'No access token. Open the full URL that `npm run web` printed (it ends in ?token=…).' };
  }
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api?token=${encodeURIComponent(token)}`;
  return { ok: true, bridge: webSocketBridge(wsUrl) };
}

export function webSocketBridge(url: string): HitchBridge {
  const ws = new WebSocket(url);
  const pending = new Map<number, (reply: Reply) => void>();
  const listeners = new Set<(event: EventMessage) => void>();
  let nextId = 1;
  let closed = false;
  const opened = new Promise<void>((resolve) => ws.addEventListener('open', () => resolve(), { once: true }));

  ws.addEventListener('message', (message) => {
    let data: unknown;
    try {
      data = JSON.parse(String(message.data));
    } catch {
      return;
    }
    if (typeof data !== 'object' || data === null) return;
    const record = data as Record<string, unknown>;
    if (typeof record.event === 'string') {
      for (const listener of listeners) listener(record as unknown as EventMessage);
    } else if (typeof record.id === 'number') {
      const resolve = pending.get(record.id);
      pending.delete(record.id);
      resolve?.(record as unknown as Reply);
    }
  });

  ws.addEventListener('close', () => {
    closed = true;
    const lost: Reply = {
      ok: false,
      error: { code: 'network', message: 'Lost the connection to the Hitch web host. Is it still running?' },
    };
    for (const resolve of pending.values()) resolve(lost);
    pending.clear();
    for (const listener of listeners) listener({ event: TRANSPORT_CLOSED, payload: null });
  });

  return {
    async call(method, params) {
      await Promise.race([opened, new Promise<void>((r) => ws.addEventListener('close', () => r(), { once: true }))]);
      if (closed) {
        return { ok: false, error: { code: 'network', message: 'Not connected to the Hitch web host (wrong token, or it stopped).' } };
      }
      const id = nextId++;
      return new Promise<Reply>((resolve) => {
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      });
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

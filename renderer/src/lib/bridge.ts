// Picks the transport: Electron's preload bridge when present, else the web host's WebSocket.
// Both implement the same HitchBridge, so nothing above this file knows which one it has.
import type { HitchBridge } from '../../../preload/channels';
import { RpcClient } from '../../../preload/rpc-client';

declare global {
  interface Window {
    hitch?: HitchBridge;
  }
}

const TOKEN_KEY = 'hitch.token';

/** Synthetic event the UI receives when the web host goes away. */
export const TRANSPORT_CLOSED = 'transport.closed';

/** The web host's access token this tab was opened with (the file routes need it too); null in the desktop app. */
export function webToken(): string | null {
  return window.hitch ? null : sessionStorage.getItem(TOKEN_KEY);
}

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
  const rpc = new RpcClient((message) => ws.send(JSON.stringify(message)));
  let wasOpen = false;
  const opened = new Promise<void>((resolve) =>
    ws.addEventListener(
      'open',
      () => {
        wasOpen = true;
        resolve();
      },
      { once: true },
    ),
  );

  ws.addEventListener('message', (message) => {
    let data: unknown;
    try {
      data = JSON.parse(String(message.data));
    } catch {
      return; // not JSON: nothing the web host sends
    }
    rpc.receive(data);
  });
  ws.addEventListener('close', () => {
    rpc.lost(wasOpen ? 'Lost the connection to the Hitch web host. Is it still running?' : 'Not connected to the Hitch web host (wrong token, or it stopped).');
    // The page hears of it as an event, like any other change.
    rpc.receive({ event: TRANSPORT_CLOSED, payload: null });
  });

  return {
    async call(method, params) {
      // Calls made before the socket opens wait for it (or for its failure).
      await Promise.race([opened, new Promise<void>((r) => ws.addEventListener('close', () => r(), { once: true }))]);
      return rpc.call(method, params);
    },
    onEvent: (listener) => rpc.onEvent(listener),
  };
}

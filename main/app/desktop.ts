// Desktop integration of the Electron shell: the tray (its menu is tray-menu.ts, a pure
// function of engine state), ssh:// links and second launches, desktop notifications, and
// closing to the tray. Everything goes through the same API as the UI.
import { join } from 'node:path';
import { app, BrowserWindow, Menu, Notification, Tray, nativeImage, powerMonitor, type MenuItemConstructorOptions } from 'electron';
import type { EventMessage, HitchBridge, HitchEvent, MasterView, SettingsView, Snapshot } from '../../preload/api';
import { HitchClient } from '../../preload/client';
import { noticeFor } from '../../preload/notifications';
import type { Logger } from '../engine/log';
import { linkInArgs } from '../engine/config/links';
import { trayMenu, type TrayAction, type TrayItem } from './tray-menu';

export interface DesktopDeps {
  /** The shell's own client of the engine (local or remote): every action is an API call. */
  bridge: HitchBridge;
  /** Shows the main window, creating it if needed; sends the UI an event once it is there. */
  showWindow(): BrowserWindow;
  /** Tells the UI something (e.g. which session to show). */
  sendToWindows(event: HitchEvent | EventMessage): void;
  log: Logger;
}

const clients = new WeakMap<DesktopDeps, HitchClient>();

/** The API, typed by the contract: each method's parameters and result (errors as ApiError). One per shell. */
function client(deps: DesktopDeps): HitchClient {
  let c = clients.get(deps);
  if (!c) clients.set(deps, (c = new HitchClient(deps.bridge)));
  return c;
}

/** Opens a session on a host and shows it; the master is connected (or reused) on the way. */
async function openSession(deps: DesktopDeps, hostId: string): Promise<void> {
  const session = await client(deps).call('session.open', { hostId, cols: 80, rows: 24 });
  deps.showWindow();
  deps.sendToWindows({ event: 'ui.show-session', payload: { sessionId: session.id } });
}

/**
 * An ssh:// link: the engine checks it, opens a known host's session (its master reused) and
 * asks the person in the window before adding any other host.
 */
export async function openLink(deps: DesktopDeps, url: string): Promise<void> {
  deps.showWindow(); // where the confirmation appears
  const session = await client(deps).call('link.open', { url, cols: 80, rows: 24 });
  if (session) deps.sendToWindows({ event: 'ui.show-session', payload: { sessionId: session.id } });
}

export function setupDesktop(deps: DesktopDeps): { tray: Tray | null; closeToTray(): boolean; refresh(): void } {
  const { log } = deps;
  let settings: SettingsView | null = null;
  let snapshot: Snapshot | null = null;
  const masters = new Map<string, MasterView>();

  const fail = (what: string) => (err: unknown) => {
    log.warn(`${what} failed`, { error: err instanceof Error ? err.message : String(err) });
    if (Notification.isSupported()) new Notification({ title: 'Hitch', body: `${what} failed: ${err instanceof Error ? err.message : String(err)}` }).show();
  };

  // --- tray -------------------------------------------------------------------------------
  let tray: Tray | null = null;
  try {
    tray = new Tray(nativeImage.createFromPath(join(__dirname, '../../build/tray.png')));
    tray.setToolTip('Hitch');
    tray.on('click', () => deps.showWindow());
  } catch (err) {
    log.warn('no tray icon on this desktop', { error: String(err) });
  }

  const run = (action: TrayAction): void => {
    switch (action.kind) {
      case 'quick-connect':
        openSession(deps, action.hostId).catch(fail(`Opening a session on ${action.hostId}`));
        break;
      case 'disconnect':
        client(deps).call('master.disconnect', { hostId: action.hostId }).catch(fail(`Disconnecting ${action.hostId}`));
        break;
      case 'disconnect-all':
        for (const h of snapshot?.catalog.hosts ?? []) {
          const m = h.masterId ? masters.get(h.masterId) : undefined;
          if (m && (m.state === 'ready' || m.state === 'reconnecting')) void client(deps).call('master.disconnect', { hostId: h.id }).catch(fail(`Disconnecting ${h.id}`));
        }
        break;
      case 'show':
        deps.showWindow();
        break;
      case 'quit':
        app.quit();
        break;
    }
  };
  const toElectron = (items: TrayItem[]): MenuItemConstructorOptions[] =>
    items.map((i) =>
      i.type === 'separator'
        ? { type: 'separator' }
        : {
            label: i.label ?? '',
            enabled: i.enabled ?? true,
            ...(i.submenu ? { submenu: toElectron(i.submenu) } : {}),
            ...(i.action ? { click: () => run(i.action!) } : {}),
          },
    );
  let pending: NodeJS.Timeout | null = null;
  const refresh = (): void => {
    // Menus rebuild at most a few times a second, however busy the engine is.
    pending ??= setTimeout(async () => {
      pending = null;
      try {
        snapshot = await client(deps).call('state.get', { watch: true });
        for (const m of snapshot.masters) masters.set(m.id, m);
        tray?.setContextMenu(Menu.buildFromTemplate(toElectron(trayMenu(snapshot, settings?.recentHosts ?? []))));
      } catch (err) {
        log.warn('tray menu not updated', { error: String(err) });
      }
    }, 250);
  };

  // --- sleep and wake ----------------------------------------------------------------------
  // After a wake, connections often look alive until a write fails: every master is probed at
  // once (the engine notices a long pause itself too; this is sooner and also covers an
  // engine running elsewhere).
  const probe = (): void => void client(deps).call('masters.probe', {}).catch(fail('Checking the connections after waking'));
  powerMonitor.on('resume', probe);

  // --- notifications and state ------------------------------------------------------------
  void client(deps).call('settings.get', {}).then((r) => (settings = r.settings), fail('Reading settings'));
  deps.bridge.onEvent((message) => {
    const event = message as HitchEvent;
    if (event.event === 'settings.changed') settings = event.payload;
    if (event.event === 'master.changed') {
      const notice = noticeFor(masters.get(event.payload.id), event.payload);
      masters.set(event.payload.id, event.payload);
      if (notice && settings?.notifications !== false && Notification.isSupported()) new Notification({ title: notice.title, body: notice.body }).show();
    }
    if (event.event === 'master.changed' || event.event === 'catalog.changed' || event.event === 'session.changed' || event.event === 'session.removed') refresh();
  });
  refresh();

  // --- ssh:// links and second launches ---------------------------------------------------
  app.setAsDefaultProtocolClient('ssh');
  const handleArgs = (argv: readonly string[]): void => {
    const url = linkInArgs(argv);
    if (url) openLink(deps, url).catch(fail('Opening the ssh:// link'));
  };
  app.on('second-instance', (_event, argv) => {
    deps.showWindow();
    handleArgs(argv);
  });
  app.on('open-url', (event, url) => {
    event.preventDefault();
    openLink(deps, url).catch(fail('Opening the ssh:// link'));
  });
  handleArgs(process.argv);

  // `refresh` after the bridge reconnected to a new engine: it watches that engine's state anew.
  return { tray, closeToTray: () => tray !== null && settings?.closeToTray !== false, refresh };
}

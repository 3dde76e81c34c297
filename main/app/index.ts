// The Electron shell: windows, the engine (ours or the one already running), the API over
// IPC, and the desktop integration (desktop.ts). Everything of substance lives in the engine;
// this file only wires Electron to it.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { app, BrowserWindow, dialog, ipcMain, shell, type IpcMainEvent, type IpcMainInvokeEvent, type WebContents } from 'electron';
import { CALL_CHANNEL, CHOOSE_FOLDER_CHANNEL, EVENT_CHANNEL } from '../../preload/channels';
import { deferredConnection, inProcessBridge, type Api, type Connection } from '../api/connection';
import { Engine } from '../engine/engine';
import { createLogger } from '../engine/log';
import { engineOptions, engineFlagSpec, runtimeDirOf } from '../engine/config/options';
import { useOrStartEngine } from '../transport/shared-engine';
import { setupDesktop } from './desktop';
import { guardContents } from './window-guards';

const log = createLogger();
const rendererIndex = join(__dirname, '../renderer/index.html');
const devServerUrl = process.env.ELECTRON_RENDERER_URL;

/** Our own page, whatever its #fragment (a window for one session is `index.html#session=s3`). */
function isOwnPage(url: string): boolean {
  const page = url.split('#')[0] ?? '';
  if (devServerUrl && !app.isPackaged) return page.startsWith(devServerUrl);
  return page === pathToFileURL(rendererIndex).href;
}

/** Only our own page may call the engine: not a navigated-away frame, not an iframe. */
function isTrustedSender(event: IpcMainEvent | IpcMainInvokeEvent): boolean {
  return isOwnPage(event.senderFrame?.url ?? '');
}

const WEB_PREFERENCES = {
  preload: join(__dirname, '../preload/index.js'),
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  webSecurity: true,
} as const;

let closeToTray = (): boolean => false;
/** Tells the desktop shell's own client that the engine behind it was replaced. */
let replaced = (): void => undefined;
let quitting = false;

function createWindow(): BrowserWindow {
  // Guards (no navigation, links to the system browser) come from 'web-contents-created'
  // below, for this window and every window opened from it alike.
  const win = new BrowserWindow({ width: 1200, height: 800, title: 'Hitch', show: false, webPreferences: WEB_PREFERENCES });
  win.once('ready-to-show', () => win.show());
  // Closing the last window keeps the masters alive in the tray, when the settings say so.
  win.on('close', (event) => {
    if (!quitting && closeToTray() && BrowserWindow.getAllWindows().length === 1) {
      event.preventDefault();
      win.hide();
    }
  });
  if (devServerUrl && !app.isPackaged) void win.loadURL(devServerUrl);
  else void win.loadFile(rendererIndex);
  return win;
}

/**
 * Each page load of a window is one client of the engine, with a connection of its own
 * (preload/index.ts names the load). A reload opens a new one; the old one is closed, and so
 * are all of a window's when it goes.
 */
function ipcConnections(api: Api): (contents: WebContents, load: string) => Connection {
  const byContents = new Map<number, { load: string; connection: Connection }>();
  const watched = new WeakSet<WebContents>();
  return (contents, load) => {
    const current = byContents.get(contents.id);
    if (current?.load === load) return current.connection;
    current?.connection.close();
    if (!watched.has(contents)) {
      watched.add(contents);
      const drop = (): void => {
        byContents.get(contents.id)?.connection.close();
        byContents.delete(contents.id);
      };
      contents.once('destroyed', drop);
      contents.on('render-process-gone', drop);
      // A reload or navigation of the page: the old page's connection goes with it at once.
      contents.on('did-start-navigation', (details) => {
        if (details.isMainFrame && !details.isSameDocument) drop();
      });
    }
    const connection = api.openConnection((message) => {
      if (!contents.isDestroyed() && isOwnPage(contents.getURL())) contents.send(EVENT_CHANNEL, message);
    });
    byContents.set(contents.id, { load, connection });
    return connection;
  };
}

/** Messages from the desktop shell (not the engine) to windows showing Hitch's own page. */
function sendToOwnPages(event: unknown): void {
  for (const win of BrowserWindow.getAllWindows()) {
    if (isOwnPage(win.webContents.getURL())) win.webContents.send(EVENT_CHANNEL, event);
  }
}

function showWindow(): BrowserWindow {
  const win = BrowserWindow.getAllWindows()[0] ?? createWindow();
  if (win.isMinimized()) win.restore();
  win.show();
  win.focus();
  return win;
}

function main(): void {
  // The engine runs in this process. `hitch daemon`'s V8 flags (ENGINE_NODE_FLAGS in
  // main/engine/node-flags.ts) reach it only from its own command line (`--js-flags`, given by
  // scripts/start.sh and the Linux desktop entry from build/electron-builder.yml); appendSwitch
  // here would give them to the renderers alone. Started otherwise, it runs with V8's defaults.
  // One Hitch per user: a second launch (say, from an ssh:// link) hands its arguments over.
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  const { values } = parseArgs({ options: engineFlagSpec, strict: false, allowPositionals: true });
  const flags = values as Record<string, string | undefined>;
  const options = engineOptions(flags, process.env, log, app.getPath('userData'));
  // The engine already running for this user (`hitch daemon`, `npm run web`), else our own.
  const shared = useOrStartEngine({
    runtimeDir: runtimeDirOf(flags, process.env, options.dataDir),
    log,
    createEngine: () => new Engine(options),
    onReplaced: () => {
      replaced();
      BrowserWindow.getAllWindows().forEach((win) => win.webContents.reload());
    },
  });

  // The first windows load before the shared engine is known: their requests wait for it.
  const connectionOf = ipcConnections({ openConnection: (send) => deferredConnection(shared.then((engine) => engine.api), send) });
  ipcMain.on(CALL_CHANNEL, (event, load: unknown, message: unknown) => {
    if (!isTrustedSender(event) || typeof load !== 'string' || load.length > 64) {
      log.warn('IPC call from an untrusted frame refused', { url: event.senderFrame?.url });
      const id = (message as { id?: unknown } | null)?.id;
      event.sender.send(EVENT_CHANNEL, { id: typeof id === 'number' ? id : null, ok: false, error: { code: 'bad-request', message: 'Calls are accepted only from the Hitch window.' } });
      return;
    }
    connectionOf(event.sender, load).request(message);
  });

  // The file browser's "Download…": where to, asked in the OS's own folder dialog.
  ipcMain.handle(CHOOSE_FOLDER_CHANNEL, async (event) => {
    if (!isTrustedSender(event)) {
      log.warn('folder chooser asked by an untrusted frame refused', { url: event.senderFrame?.url });
      return null;
    }
    const win = BrowserWindow.fromWebContents(event.sender);
    const options = { title: 'Download into', properties: ['openDirectory', 'createDirectory'] } satisfies Electron.OpenDialogOptions;
    const chosen = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    return chosen.canceled ? null : (chosen.filePaths[0] ?? null);
  });

  // Every web contents Electron creates, whoever opened it, gets the same guards.
  app.on('web-contents-created', (_event, contents) =>
    guardContents(contents, { isOwnPage, openExternal: (url) => void shell.openExternal(url), webPreferences: WEB_PREFERENCES }),
  );

  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: err.stack ?? String(err) }));
  app.on('before-quit', () => {
    quitting = true;
    void shared.then((engine) => engine.close());
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
  void Promise.all([app.whenReady(), shared]).then(
    ([, engine]) => {
      createWindow();
      const bridge = inProcessBridge(engine.api);
      const desktop = setupDesktop({
        bridge,
        showWindow,
        sendToWindows: sendToOwnPages,
        log,
      });
      replaced = () => {
        bridge.reopen();
        desktop.refresh();
      };
      closeToTray = desktop.closeToTray;
    },
    (err: Error) => {
      log.error('no engine', { error: err.message });
      app.exit(1);
    },
  );
}


main();

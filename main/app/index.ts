// The Electron shell: one window, the engine in this process, the API over IPC. Everything
// of substance lives in the engine; this file only wires Electron to it.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { app, BrowserWindow, ipcMain, shell, type IpcMainInvokeEvent } from 'electron';
import { CALL_CHANNEL, EVENT_CHANNEL, type Reply } from '../../preload/channels';
import { createRouter } from '../api/router';
import { Engine } from '../engine/engine';
import { createLogger } from '../engine/log';
import { engineOptions, engineFlagSpec } from '../engine/options';

const log = createLogger();
const rendererIndex = join(__dirname, '../renderer/index.html');
const devServerUrl = process.env.ELECTRON_RENDERER_URL;

/** Only our own page may call the engine: not a navigated-away frame, not an iframe. */
function isTrustedSender(event: IpcMainInvokeEvent): boolean {
  const url = event.senderFrame?.url ?? '';
  if (devServerUrl && !app.isPackaged) return url.startsWith(devServerUrl);
  return url === pathToFileURL(rendererIndex).href;
}

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1200,
    height: 800,
    title: 'Hitch',
    show: false,
    webPreferences: {
      preload: join(__dirname, '../preload/index.js'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    },
  });
  win.once('ready-to-show', () => win.show());
  // The page never navigates; links open in the user's browser.
  win.webContents.on('will-navigate', (event) => event.preventDefault());
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url);
    return { action: 'deny' };
  });
  if (devServerUrl && !app.isPackaged) void win.loadURL(devServerUrl);
  else void win.loadFile(rendererIndex);
  return win;
}

function main(): void {
  const { values } = parseArgs({ options: engineFlagSpec, strict: false, allowPositionals: true });
  const engine = new Engine(engineOptions(values as Record<string, string | undefined>, process.env, log, app.getPath('userData')));
  const router = createRouter(engine, log);

  ipcMain.handle(CALL_CHANNEL, (event, method: unknown, params: unknown): Promise<Reply> | Reply => {
    if (!isTrustedSender(event)) {
      log.warn('IPC call from an untrusted frame refused', { url: event.senderFrame?.url });
      return { ok: false, error: { code: 'bad-request', message: 'Calls are accepted only from the Hitch window.' } };
    }
    return router.call(method, params);
  });

  engine.onEvent((event) => {
    for (const win of BrowserWindow.getAllWindows()) win.webContents.send(EVENT_CHANNEL, event);
  });

  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: err.stack ?? String(err) }));
  app.on('before-quit', () => engine.shutdown());
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
  void app.whenReady().then(() => createWindow());
}

main();

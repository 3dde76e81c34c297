// The guards every Hitch window gets, whichever way it was made (the main window, a session
// popped out with window.open, anything Electron creates later): the page never navigates
// (a dropped link or an OSC 8 hyperlink must not replace it with a foreign page that could
// read sessions through the preload), foreign links open in the system browser only, and new
// windows are allowed only for Hitch's own page, with the same sandboxed preferences.
// Electron-free, so that it is tested without Electron.

/** The part of Electron's WebContents the guards use. */
export interface GuardedContents {
  on(event: 'will-navigate' | 'will-redirect', listener: (event: { preventDefault(): void }, url: string) => void): unknown;
  on(event: 'will-attach-webview', listener: (event: { preventDefault(): void }) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => WindowOpenDecision): void;
}

export type WindowOpenDecision = { action: 'deny' } | { action: 'allow'; overrideBrowserWindowOptions: { width: number; height: number; webPreferences: object } };

export interface GuardOptions {
  /** Hitch's own page, whatever its #fragment. */
  isOwnPage(url: string): boolean;
  /** Opens a URL in the system browser. */
  openExternal(url: string): void;
  webPreferences: object;
}

/** Only web links leave Hitch, and only to the system browser. */
export function isExternalLink(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}

export function guardContents(contents: GuardedContents, opts: GuardOptions): void {
  const stay = (event: { preventDefault(): void }, url: string): void => {
    if (!opts.isOwnPage(url)) event.preventDefault();
  };
  contents.on('will-navigate', stay);
  contents.on('will-redirect', stay);
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (opts.isOwnPage(url)) return { action: 'allow', overrideBrowserWindowOptions: { width: 960, height: 640, webPreferences: opts.webPreferences } };
    if (isExternalLink(url)) opts.openExternal(url);
    return { action: 'deny' };
  });
}

// Every Hitch window, the main one and sessions popped out with window.open alike, gets the
// same guards: no navigation away from Hitch's page, links only to the system browser.
import { describe, expect, it } from 'vitest';
import { guardContents, isExternalLink, type GuardedContents, type WindowOpenDecision } from '../../main/app/window-guards';

const OWN = 'file:///opt/hitch/renderer/index.html';

function fakeContents(): { contents: GuardedContents; navigate(event: string, url: string): boolean; open(url: string): WindowOpenDecision; attachWebview(): boolean } {
  const listeners = new Map<string, (event: { preventDefault(): void }, url: string) => void>();
  let openHandler: ((d: { url: string }) => WindowOpenDecision) | null = null;
  const contents = {
    on: (event: string, listener: (event: { preventDefault(): void }, url: string) => void) => listeners.set(event, listener),
    setWindowOpenHandler: (h: (d: { url: string }) => WindowOpenDecision) => (openHandler = h),
  } as unknown as GuardedContents;
  const fire = (event: string, url: string): boolean => {
    let prevented = false;
    listeners.get(event)?.({ preventDefault: () => (prevented = true) }, url);
    return prevented;
  };
  return { contents, navigate: fire, open: (url) => openHandler!({ url }), attachWebview: () => fire('will-attach-webview', '') };
}

function guarded(): ReturnType<typeof fakeContents> & { opened: string[] } {
  const fake = fakeContents();
  const opened: string[] = [];
  guardContents(fake.contents, { isOwnPage: (url) => url.split('#')[0] === OWN, openExternal: (url) => opened.push(url), webPreferences: { sandbox: true } });
  return { ...fake, opened };
}

describe('a Hitch window', () => {
  it('never navigates away from its page: a dropped link or a followed hyperlink is stopped', () => {
    const w = guarded();
    expect(w.navigate('will-navigate', 'https://evil.example/steal')).toBe(true);
    expect(w.navigate('will-navigate', 'file:///etc/passwd')).toBe(true);
    expect(w.navigate('will-redirect', 'https://evil.example/')).toBe(true);
    expect(w.navigate('will-navigate', `${OWN}#session=s3`)).toBe(false);
    expect(w.attachWebview()).toBe(true);
  });

  it('opens web links in the system browser only, and nothing else', () => {
    const w = guarded();
    expect(w.open('https://example.com/docs')).toEqual({ action: 'deny' });
    expect(w.open('http://intranet/')).toEqual({ action: 'deny' });
    expect(w.open('file:///etc/passwd')).toEqual({ action: 'deny' });
    expect(w.open('javascript:alert(1)')).toEqual({ action: 'deny' });
    expect(w.opened).toEqual(['https://example.com/docs', 'http://intranet/']);
  });

  it('allows a new window only for its own page, with the same sandboxed preferences', () => {
    const w = guarded();
    expect(w.open(`${OWN}#session=s7`)).toEqual({ action: 'allow', overrideBrowserWindowOptions: { width: 960, height: 640, webPreferences: { sandbox: true } } });
  });

  it('takes only http and https as links to hand to the browser', () => {
    expect(isExternalLink('https://a.example')).toBe(true);
    expect(isExternalLink('ssh://web1')).toBe(false);
    expect(isExternalLink('not a url')).toBe(false);
  });
});

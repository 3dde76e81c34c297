// OpenSSH's forward specs as `hitch forward` reads them: every form ssh takes for -L/-R/-D
// (IPv6 in brackets, an empty or `*` bind meaning every address), and anything else refused
// with a sentence naming the flag and the spec.
import { describe, expect, it } from 'vitest';
import { listenText, matchesSpec, parseForwardSpec, targetText } from '../../preload/forward-spec';

describe('forward specs', () => {
  it('reads local, remote and dynamic specs, loopback unless a bind address is given', () => {
    expect(parseForwardSpec('local', '8080:db.internal:5432')).toEqual({ kind: 'local', bindAddress: 'localhost', listenPort: 8080, connectHost: 'db.internal', connectPort: 5432 });
    expect(parseForwardSpec('remote', '0.0.0.0:9000:localhost:3000')).toMatchObject({ kind: 'remote', bindAddress: '0.0.0.0', listenPort: 9000, connectHost: 'localhost', connectPort: 3000 });
    expect(parseForwardSpec('remote', '0:localhost:3000')).toMatchObject({ listenPort: 0 });
    expect(parseForwardSpec('dynamic', '1080')).toEqual({ kind: 'dynamic', bindAddress: 'localhost', listenPort: 1080, connectHost: null, connectPort: null });
    expect(parseForwardSpec('dynamic', '127.0.0.1:1080')).toMatchObject({ bindAddress: '127.0.0.1' });
  });

  it('takes * or an empty bind address for every address', () => {
    expect(parseForwardSpec('local', '*:8080:web:80').bindAddress).toBe('*');
    expect(parseForwardSpec('local', ':8080:web:80').bindAddress).toBe('*');
    expect(parseForwardSpec('dynamic', ':1080').bindAddress).toBe('*');
  });

  it('takes IPv6 addresses in brackets, and shows them so', () => {
    const f = parseForwardSpec('local', '[::1]:8080:[fd00::5]:80');
    expect(f).toMatchObject({ bindAddress: '::1', listenPort: 8080, connectHost: 'fd00::5', connectPort: 80 });
    expect(listenText({ ...f, boundPort: null })).toBe('[::1]:8080');
    expect(targetText(f)).toBe('[fd00::5]:80');
    expect(parseForwardSpec('dynamic', '[::]:1080').bindAddress).toBe('::');
  });

  it.each([
    ['local', '8080:web'],
    ['local', '8080'],
    ['local', '1:2:3:4:5'],
    ['local', '65536:web:80'],
    ['local', '8080:web:0'],
    ['local', '-1:web:80'],
    ['local', '8080:web:80:'],
    ['local', '8080:we b:80'],
    ['local', '8080:$(id):80'],
    ['remote', '[::1:8080:web:80'],
    ['remote', '[::1]x:8080:web:80'],
    ['dynamic', '1:2:3'],
    ['dynamic', 'socks'],
    ['dynamic', ''],
  ] as const)('refuses %s %s', (kind, spec) => {
    const flag = { local: '-L', remote: '-R', dynamic: '-D' }[kind];
    expect(() => parseForwardSpec(kind, spec)).toThrow(new RegExp(`^${flag} ${spec.replace(/[$()[\]]/g, '\\$&')}: .*\\(expected \\[BIND:\\]PORT`));
  });

  it('finds a forward by the spec it was opened with, or by the port it got', () => {
    const spec = parseForwardSpec('local', '8080:web:80');
    const view = { kind: 'local' as const, bindAddress: 'localhost', listenPort: 8080, boundPort: 8080, connectHost: 'web', connectPort: 80 };
    expect(matchesSpec(view, spec)).toBe(true);
    expect(matchesSpec({ ...view, connectPort: 81 }, spec)).toBe(false);
    expect(matchesSpec({ ...view, kind: 'remote' }, spec)).toBe(false);
    const any = parseForwardSpec('remote', '0:localhost:3000');
    expect(matchesSpec({ kind: 'remote', bindAddress: 'localhost', listenPort: 0, boundPort: 41000, connectHost: 'localhost', connectPort: 3000 }, any)).toBe(true);
    expect(matchesSpec({ kind: 'remote', bindAddress: 'localhost', listenPort: 0, boundPort: 41000, connectHost: 'localhost', connectPort: 3000 }, parseForwardSpec('remote', '41000:localhost:3000'))).toBe(true);
  });
});

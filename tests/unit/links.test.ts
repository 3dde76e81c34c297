// ssh:// links from the browser or another app: parsed strictly, matched to known hosts.
import { describe, expect, it } from 'vitest';
import type { HostView } from '../../preload/api';
import { hostForLink, hostFromLink, linkInArgs, parseSshLink } from '../../main/engine/config/links';
import { hostView } from '../fixtures/views';

describe('ssh:// links', () => {
  it('reads user, host and port', () => {
    expect(parseSshLink('ssh://alice@web1.example.com:2222')).toEqual({ user: 'alice', host: 'web1.example.com', port: 2222 });
    expect(parseSshLink('ssh://web1/')).toEqual({ user: null, host: 'web1', port: null });
    expect(parseSshLink('ssh://[2001:db8::1]:22')).toEqual({ user: null, host: '2001:db8::1', port: 22 });
    expect(parseSshLink('ssh://bob;fingerprint=ssh-ed25519-AAAA@db')).toEqual({ user: 'bob', host: 'db', port: null });
  });

  it('refuses what is not plainly a host to connect to', () => {
    for (const bad of [
      'http://web1',
      'ssh://alice:secret@web1', // passwords never come from links
      'ssh://-oProxyCommand=evil',
      'ssh://web1/etc/passwd',
      'ssh://web1?x=1',
      'ssh://we b1',
      'ssh://-alice@web1',
      'ssh://web1:0',
      'not a url',
    ]) {
      expect(parseSshLink(bad), bad).toBeNull();
    }
  });

  it('finds the link among the command-line arguments of a second launch', () => {
    expect(linkInArgs(['/usr/bin/hitch', '--no-sandbox', 'ssh://alice@web1'])).toBe('ssh://alice@web1');
    expect(linkInArgs(['/usr/bin/hitch', 'web1'])).toBeNull();
    // A malformed escape is refused, not thrown (it used to throw during desktop setup).
    expect(parseSshLink('ssh://%E0%A4%A@web1')).toBeNull();
    expect(parseSshLink(linkInArgs(['hitch', 'ssh://%ZZ@web1'])!)).toBeNull();
  });

  it('matches an alias first, then a host name, honouring user and port', () => {
    const h = (id: string, hostname: string, user: string, port: number): HostView => hostView({ id, hostname, user, port });
    const hosts = [h('web1', '10.0.0.5', 'deploy', 22), h('www', 'web1.example.com', 'alice', 2222)];
    expect(hostForLink(parseSshLink('ssh://web1')!, hosts)?.id).toBe('web1');
    expect(hostForLink(parseSshLink('ssh://alice@web1.example.com:2222')!, hosts)?.id).toBe('www');
    expect(hostForLink(parseSshLink('ssh://bob@web1.example.com:2222')!, hosts)).toBeNull();
    expect(hostFromLink(parseSshLink('ssh://bob@web1.example.com:2222')!)).toEqual({ id: 'bob-web1.example.com-2222', hostname: 'web1.example.com', user: 'bob', port: 2222 });
  });
});

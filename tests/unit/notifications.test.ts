// Which changes of a master deserve a notification, and which do not.
import { describe, expect, it } from 'vitest';
import type { MasterView } from '../../preload/api';
import { noticeFor } from '../../preload/notifications';
import { masterView } from '../fixtures/views';

const base = masterView();
const at = (patch: Partial<MasterView>): MasterView => ({ ...base, ...patch });

describe('notifications about masters', () => {
  it('announces a drop and the reconnection', () => {
    const dropped = at({ state: 'reconnecting', error: { code: 'network', message: 'The connection to web1 was lost.' } });
    expect(noticeFor(base, dropped)).toMatchObject({ title: 'Connection dropped', level: 'warning' });
    expect(noticeFor(dropped, base)).toMatchObject({ title: 'Reconnected', level: 'info' });
  });

  it('announces a changed host key loudly, once', () => {
    const changed = at({ state: 'failed', error: { code: 'host-key-changed', message: 'WARNING: the host key of web1 has CHANGED.' } });
    expect(noticeFor(at({ state: 'connecting' }), changed)).toMatchObject({ title: 'Host key changed', level: 'warning' });
    expect(noticeFor(changed, changed)).toBeNull();
  });

  it('announces MaxSessions when the limit is first learned', () => {
    expect(noticeFor(base, at({ sessionLimit: 3, connections: 2 }))?.body).toMatch(/allows 3 sessions per connection; Hitch opened another connection/);
    expect(noticeFor(at({ sessionLimit: 3 }), at({ sessionLimit: 3, sessions: 2 }))).toBeNull();
  });

  it('stays quiet for ordinary changes', () => {
    expect(noticeFor(undefined, at({ state: 'connecting' }))).toBeNull();
    expect(noticeFor(at({ state: 'connecting' }), base)).toBeNull(); // a first connection is not news
    expect(noticeFor(base, at({ sessions: 2, latencyMs: 3 }))).toBeNull();
    expect(noticeFor(base, at({ state: 'closed' }))).toBeNull(); // closed on purpose
  });
});

// The web host's download tickets (main/web/file-endpoints.ts): one file each, good once, for a minute.
import { describe, expect, it } from 'vitest';
import { DownloadTickets } from '../../main/web/file-endpoints';

describe('download tickets', () => {
  it('name their file, are taken by their first use, and lapse after a minute', () => {
    const tickets = new DownloadTickets();
    const now = 1_000_000;
    const a = tickets.issue('web1', '/srv/a', now);
    const b = tickets.issue('web1', '/srv/b', now);
    expect(a).not.toBe(b);
    expect(tickets.take(b, now + 1)).toMatchObject({ host: 'web1', path: '/srv/b' });
    expect(tickets.take(b, now + 2)).toBeNull();
    expect(tickets.take(a, now + 60_000)).toBeNull(); // expired (and gone)
    expect(tickets.take(a, now)).toBeNull();
    const c = tickets.issue('web1', '/srv/c', now);
    const taken = tickets.take(c, now + 59_999);
    expect(taken).toMatchObject({ host: 'web1', path: '/srv/c' });
    // Given back after a failed start: good again, until it would have lapsed anyway.
    tickets.giveBack(c, taken!);
    expect(tickets.take(c, now + 59_999)).toMatchObject({ path: '/srv/c' });
    tickets.giveBack(c, taken!);
    expect(tickets.take(c, now + 60_000)).toBeNull();
    expect(tickets.take('nosuch', now)).toBeNull();
  });
});

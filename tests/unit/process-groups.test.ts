// The grouping the process panel and `hitch ps` share: one group per open session in tab
// order, then what outlived its session, then other sessions' processes; trees in order.
import { describe, expect, it } from 'vitest';
import type { ProcessView } from '../../preload/api';
import { elapsed, processGroups, treeOrder } from '../../preload/process-groups';

function proc(pid: number, ppid: number, extra: Partial<ProcessView> = {}): ProcessView {
  return { pid, ppid, pgid: pid, user: 'u', state: 'S', cpu: 0, rssKb: 1, startedAt: 0, command: `p${pid}`, sessionId: null, detached: false, ...extra };
}

describe('process groups', () => {
  it('lists each tree depth-first under its root, children by pid', () => {
    const rows = treeOrder([proc(30, 10), proc(10, 1), proc(20, 10), proc(40, 20), proc(5, 1)]);
    expect(rows.map((r) => [r.process.pid, r.depth])).toEqual([
      [5, 0],
      [10, 0],
      [20, 1],
      [40, 2],
      [30, 1],
    ]);
  });

  it('survives a parent loop (a reused pid) without repeating a process', () => {
    const rows = treeOrder([proc(10, 20), proc(20, 10), proc(30, 1)]);
    expect(rows.map((r) => r.process.pid)).toEqual([30]);
  });

  it('groups by open session in tab order, then detached, then the rest', () => {
    const processes = [
      proc(100, 1, { sessionId: 's2' }),
      proc(101, 100, { sessionId: 's2' }),
      proc(200, 1, { sessionId: 's1' }),
      proc(300, 1, { sessionId: 's1', detached: true }),
      proc(400, 1, { sessionId: 's9' }),
      proc(500, 1),
    ];
    const groups = processGroups(processes, [
      { id: 's2', title: 'web1' },
      { id: 's1', title: 'web1' },
    ]);
    expect(groups.map((g) => [g.kind, g.sessionId, g.title, g.rows.map((r) => r.process.pid)])).toEqual([
      ['session', 's2', 'web1 #1', [100, 101]],
      ['session', 's1', 'web1 #2', [200]],
      ['detached', null, 'Detached (outlived their session)', [300]],
      ['other', null, 'Other sessions on this connection', [400, 500]],
    ]);
  });

  it('reads run times as ps does', () => {
    expect(elapsed(0, 59_000)).toBe('0:59');
    expect(elapsed(0, 61 * 60_000)).toBe('1h01');
    expect(elapsed(5000, 0)).toBe('0:00');
  });
});

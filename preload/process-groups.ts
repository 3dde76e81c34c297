// How a host's process tree is grouped for a person: one group per open session (its
// processes in tree order, children indented below their parent), then processes that
// outlived their session, then those of sessions Hitch did not open. A pure function shared by
// the process panel and `hitch ps`, so both always show the same thing.
import type { ProcessView, SessionView } from './api';

export interface ProcessRow {
  process: ProcessView;
  /** 0 for a group's roots, one more per level below. */
  depth: number;
}

export interface ProcessGroup {
  kind: 'session' | 'detached' | 'other';
  /** The session a 'session' group belongs to. */
  sessionId: string | null;
  title: string;
  rows: ProcessRow[];
}

/** Members in tree order: roots (whose parent is not a member) by pid, each followed by its subtree. */
export function treeOrder(members: readonly ProcessView[]): ProcessRow[] {
  const pids = new Set(members.map((p) => p.pid));
  const children = new Map<number, ProcessView[]>();
  for (const p of members) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const rows: ProcessRow[] = [];
  const seen = new Set<number>();
  const walk = (process: ProcessView, depth: number): void => {
    if (seen.has(process.pid)) return;
    seen.add(process.pid);
    rows.push({ process, depth });
    for (const child of (children.get(process.pid) ?? []).sort((a, b) => a.pid - b.pid)) walk(child, depth + 1);
  };
  for (const root of members.filter((p) => !pids.has(p.ppid)).sort((a, b) => a.pid - b.pid)) walk(root, 0);
  return rows;
}

/** `sessions`: the open sessions on the master the processes belong to, in tab order. */
export function processGroups(processes: readonly ProcessView[], sessions: readonly Pick<SessionView, 'id' | 'title'>[]): ProcessGroup[] {
  const open = new Set(sessions.map((s) => s.id));
  return [
    ...sessions.map((s, i) => ({
      kind: 'session' as const,
      sessionId: s.id,
      title: `${s.title} #${i + 1}`,
      rows: treeOrder(processes.filter((p) => p.sessionId === s.id && !p.detached)),
    })),
    { kind: 'detached', sessionId: null, title: 'Detached (outlived their session)', rows: treeOrder(processes.filter((p) => p.detached)) },
    {
      kind: 'other',
      sessionId: null,
      title: 'Other sessions on this connection',
      rows: treeOrder(processes.filter((p) => !p.detached && !(p.sessionId !== null && open.has(p.sessionId)))),
    },
  ];
}

/** How long a process has run, as ps's TIME column is read: m:ss, or h followed by mm. */
export function elapsed(startedAt: number, now: number): string {
  const s = Math.max(0, Math.round((now - startedAt) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}` : `${m}:${String(s % 60).padStart(2, '0')}`;
}

// Reading `ps` output into processes, and deciding which of them belong to which session.
// Pure functions: the remote side only ever runs the fixed command in PS_COMMAND.
import type { ProcessView } from '../../../preload/api';
import { TMUX_SOCKET_NAME } from '../sessions/tmux-control';

/**
 * One `ps` invocation both procps (Linux) and BSD/macOS understand: every process, fixed
 * columns with empty headers, the full command line last (`-ww`: never truncated). The user
 * column alone has a 32-character header, because procps sizes a column by its header and
 * otherwise shortens longer names to `hitchte+`; the one header line is skipped in parsing.
 */
export const PS_COMMAND = `ps -A -ww -o pid= -o ppid= -o pgid= -o user=${'_'.repeat(32)} -o stat= -o pcpu= -o rss= -o etime= -o args=`;

export interface PsRow {
  pid: number;
  ppid: number;
  pgid: number;
  user: string;
  state: string;
  cpu: number;
  rssKb: number;
  elapsedSeconds: number;
  command: string;
}

/** `[[dd-]hh:]mm:ss` as both procps and BSD print it. */
export function parseElapsed(text: string): number | null {
  const m = /^(?:(?:(\d+)-)?(\d+):)?(\d+):(\d+)$/.exec(text);
  if (!m) return null;
  const [, days, hours, minutes, seconds] = m;
  return Number(days ?? 0) * 86400 + Number(hours ?? 0) * 3600 + Number(minutes) * 60 + Number(seconds);
}

const ROW = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+([\d.,]+)\s+(\d+)\s+(\S+)(?: (.*))?$/;

/** Parses PS_COMMAND output; lines that do not fit are skipped (and counted). */
export function parsePs(output: string): { rows: PsRow[]; skipped: number } {
  const rows: PsRow[] = [];
  let skipped = 0;
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    const m = ROW.exec(line);
    const elapsed = m ? parseElapsed(m[8]!) : null;
    if (!m || elapsed === null) {
      skipped++;
      continue;
    }
    rows.push({
      pid: Number(m[1]),
      ppid: Number(m[2]),
      pgid: Number(m[3]),
      user: m[4]!,
      state: m[5]!,
      cpu: Number(m[6]!.replace(',', '.')),
      rssKb: Number(m[7]),
      elapsedSeconds: elapsed,
      // BSD ps may pad the last column; procps does not. Trailing blanks are never meaningful.
      command: (m[9] ?? '').replace(/\s+$/, ''),
    });
  }
  return { rows, skipped };
}

/**
 * Hitch's own commands on the host's tmux (listing durable shells, ending one, a shell's tmux
 * client before it is known as such): children of sshd like a session's first process, but
 * never one. Matched on the command line sshd's shell runs (`tmux -L hitch …`, directly or
 * under `sh -c`).
 */
const OWN_TMUX = new RegExp(`(^|\\s)tmux -L ${TMUX_SOCKET_NAME}\\s`);

/**
 * The children of sshd that may be the first process of a session waiting for one, oldest
 * first: sshd forks each session's process when it accepts the request, in request order.
 * Not the process monitor, not a process already some session's root, not Hitch's own tmux
 * commands (a listing running while a session opens would otherwise take its place).
 */
export function rootCandidates(rows: readonly PsRow[], sshdPid: number, monitorPid: number, taken: ReadonlySet<number>): PsRow[] {
  return rows
    .filter((r) => r.ppid === sshdPid && r.pid !== monitorPid && !taken.has(r.pid) && !OWN_TMUX.test(r.command))
    .sort((a, b) => b.elapsedSeconds - a.elapsedSeconds || a.pid - b.pid);
}

/** Every pid below `root` (not `root` itself), parents before children. */
export function descendants(rows: readonly { pid: number; ppid: number }[], root: number): number[] {
  const children = new Map<number, number[]>();
  for (const r of rows) {
    if (r.pid === r.ppid) continue;
    const list = children.get(r.ppid);
    if (list) list.push(r.pid);
    else children.set(r.ppid, [r.pid]);
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  const seen = new Set<number>([root]);
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Two start times (seconds) of one process, from `etime` read at different moments: etime is whole seconds. */
function sameStart(a: number, b: number): boolean {
  return Math.abs(a - b) <= 2;
}

export interface TreeInput {
  rows: PsRow[];
  /** The sshd process serving the connection: parent of every session's first process. */
  sshdPid: number;
  /** Our own monitor shell, hidden from the tree. */
  monitorPid: number;
  /** Sessions' root pids, known so far. */
  roots: Map<string, number>;
  /** Processes seen in this connection's tree before, with their start (seconds since epoch). */
  known: Map<number, number>;
  /** Seconds since epoch when `rows` was taken. */
  now: number;
}

/**
 * The processes of one connection: everything under its sshd process, each labelled with
 * the session whose root it descends from, plus processes seen there before that have since
 * been reparented (a session closed and left them running): those are `detached`.
 */
export function buildTree(input: TreeInput): ProcessView[] {
  const { rows, sshdPid, monitorPid, roots, known, now } = input;
  const byPid = new Map(rows.map((r) => [r.pid, r]));
  const sessionOfRoot = new Map([...roots].map(([sessionId, pid]) => [pid, sessionId]));
  const out: ProcessView[] = [];
  const inTree = new Set<number>();
  const monitorFamily = new Set([monitorPid, ...descendants(rows, monitorPid)]);

  const sessionOf = (pid: number): string | null => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && hops < 4096; hops++) {
      const s = sessionOfRoot.get(p);
      if (s) return s;
      const row = byPid.get(p);
      if (!row || row.ppid === sshdPid) return null;
      p = row.ppid;
    }
    return null;
  };
  // A pid seen before is the same process only if it started at the same time (pids recycle).
  const sameProcess = (r: PsRow): boolean => {
    const started = known.get(r.pid);
    return started !== undefined && sameStart(started, now - r.elapsedSeconds);
  };
  const view = (r: PsRow, detached: boolean): ProcessView => ({
    pid: r.pid,
    ppid: r.ppid,
    pgid: r.pgid,
    user: r.user,
    state: r.state,
    cpu: r.cpu,
    rssKb: r.rssKb,
    // From the first sighting, so the value is stable and only real changes reach the UI.
    startedAt: (sameProcess(r) ? known.get(r.pid)! : now - r.elapsedSeconds) * 1000,
    command: r.command,
    sessionId: sessionOf(r.pid),
    detached,
  });

  for (const pid of descendants(rows, sshdPid)) {
    if (monitorFamily.has(pid)) continue;
    inTree.add(pid);
    out.push(view(byPid.get(pid)!, false));
  }
  // A durable shell runs under the tmux server, not sshd: its tree hangs from its root.
  for (const root of roots.values()) {
    if (inTree.has(root) || !byPid.has(root)) continue;
    for (const pid of [root, ...descendants(rows, root)]) {
      if (inTree.has(pid)) continue;
      inTree.add(pid);
      out.push(view(byPid.get(pid)!, false));
    }
  }
  for (const r of rows) {
    if (inTree.has(r.pid) || monitorFamily.has(r.pid) || r.pid === sshdPid || !sameProcess(r)) continue;
    // Only the top of a reparented family is checked here; its children follow below.
    if (known.has(r.ppid) && byPid.has(r.ppid) && sameProcess(byPid.get(r.ppid)!)) continue;
    for (const pid of [r.pid, ...descendants(rows, r.pid)]) {
      if (inTree.has(pid)) continue;
      inTree.add(pid);
      out.push(view(byPid.get(pid)!, true));
    }
  }
  return out;
}

/** Remembers the start time of every process now in the tree, so that detached ones stay known. */
export function remember(known: Map<number, number>, tree: ProcessView[]): void {
  const alive = new Set(tree.map((p) => p.pid));
  for (const p of tree) {
    const started = known.get(p.pid);
    // A recycled pid (another start) is a new process: its own start replaces the old one's.
    if (started === undefined || !sameStart(started, p.startedAt / 1000)) known.set(p.pid, p.startedAt / 1000);
  }
  for (const pid of known.keys()) if (!alive.has(pid)) known.delete(pid);
}

/** What changed between two trees of the same connection, by pid. */
export function diffTrees(before: Map<number, ProcessView>, after: ProcessView[]): { upserted: ProcessView[]; removed: number[] } {
  const upserted: ProcessView[] = [];
  const seen = new Set<number>();
  for (const p of after) {
    seen.add(p.pid);
    const old = before.get(p.pid);
    if (!old || !sameView(old, p)) upserted.push(p);
  }
  const removed = [...before.keys()].filter((pid) => !seen.has(pid));
  return { upserted, removed };
}

function sameView(a: ProcessView, b: ProcessView): boolean {
  return (
    a.ppid === b.ppid &&
    a.pgid === b.pgid &&
    a.state === b.state &&
    a.cpu === b.cpu &&
    a.rssKb === b.rssKb &&
    a.startedAt === b.startedAt &&
    a.command === b.command &&
    a.sessionId === b.sessionId &&
    a.detached === b.detached &&
    a.user === b.user
  );
}

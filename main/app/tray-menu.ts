// The tray menu as a pure function of engine state: hosts with their state for quick
// connect, live masters with their session counts, disconnect one or all, show, quit.
// main/app/tray.ts turns it into Electron's Menu; this file never imports electron.
import type { HostView, MasterView, Snapshot } from '../../preload/api';

export type TrayAction =
  | { kind: 'quick-connect'; hostId: string }
  | { kind: 'disconnect'; hostId: string }
  | { kind: 'disconnect-all' }
  | { kind: 'show' }
  | { kind: 'quit' };

export interface TrayItem {
  label?: string;
  type?: 'separator';
  enabled?: boolean;
  submenu?: TrayItem[];
  action?: TrayAction;
}

const STATE: Record<MasterView['state'], string> = {
  connecting: 'connecting…',
  authenticating: 'logging in…',
  ready: 'connected',
  reconnecting: 'reconnecting…',
  closed: 'not connected',
  failed: 'failed',
};

function sessions(n: number): string {
  return `${n} session${n === 1 ? '' : 's'}`;
}

function hostLabel(host: HostView, master: MasterView | undefined): string {
  if (host.error) return `${host.id} — unusable: ${host.error}`;
  if (!master) return host.id;
  return master.state === 'ready' ? `${host.id} — connected, ${sessions(master.sessions)}` : `${host.id} — ${STATE[master.state]}`;
}

/** Hosts first by recent use, then as the catalog lists them; `limit` keeps the menu short. */
export function trayMenu(snapshot: Snapshot, recentHosts: readonly string[] = [], limit = 15): TrayItem[] {
  const masters = new Map(snapshot.masters.map((m) => [m.id, m]));
  const masterOf = (h: HostView): MasterView | undefined => (h.masterId ? masters.get(h.masterId) : undefined);
  const hosts = [...snapshot.catalog.hosts].sort((a, b) => {
    const ra = recentHosts.indexOf(a.id);
    const rb = recentHosts.indexOf(b.id);
    return (ra < 0 ? Infinity : ra) - (rb < 0 ? Infinity : rb);
  });
  const live = snapshot.masters.filter((m) => m.state === 'ready' || m.state === 'reconnecting');
  const totalSessions = live.reduce((n, m) => n + m.sessions, 0);
  // One alias per live master, to name it in "Disconnect".
  const aliasOf = new Map<string, string>();
  for (const h of snapshot.catalog.hosts) if (h.masterId && !aliasOf.has(h.masterId)) aliasOf.set(h.masterId, h.id);

  const items: TrayItem[] = [
    { label: live.length === 0 ? 'Hitch — no connections' : `Hitch — ${live.length} connection${live.length === 1 ? '' : 's'}, ${sessions(totalSessions)}`, enabled: false },
    { type: 'separator' },
    {
      label: 'Quick connect',
      enabled: hosts.length > 0,
      submenu: hosts.slice(0, limit).map((h) => ({
        label: hostLabel(h, masterOf(h)),
        enabled: !h.error,
        action: { kind: 'quick-connect', hostId: h.id },
      })),
    },
  ];
  if (live.length > 0) {
    items.push({ type: 'separator' });
    for (const m of live) {
      const alias = aliasOf.get(m.id);
      items.push({
        label: `${alias ?? m.id} — ${m.state === 'ready' ? sessions(m.sessions) : STATE[m.state]}`,
        submenu: alias ? [{ label: 'Disconnect', action: { kind: 'disconnect', hostId: alias } }] : [],
      });
    }
    items.push({ label: 'Disconnect all', action: { kind: 'disconnect-all' } });
  }
  items.push({ type: 'separator' }, { label: 'Show Hitch', action: { kind: 'show' } }, { label: 'Quit Hitch', action: { kind: 'quit' } });
  return items;
}

// The tray menu is a pure function of what the engine knows.
import { describe, expect, it } from 'vitest';
import type { HostView, MasterView, Snapshot } from '../../preload/api';
import { trayMenu } from '../../main/app/tray-menu';
import { hostView, masterView } from '../fixtures/views';

const host = (id: string, masterId: string | null, error: string | null = null): HostView => hostView({ id, masterId, error });
const master = (id: string, state: MasterView['state'], sessions: number): MasterView => masterView({ id, state, sessions });
const snapshot = (hosts: HostView[], masters: MasterView[]): Snapshot => ({ catalog: { hosts, configPath: '~/.ssh/config', warnings: [] }, masters, sessions: [], prompts: [], forwards: [], transfers: [] });

describe('tray menu', () => {
  it('offers quick connect, show and quit when nothing is connected', () => {
    const menu = trayMenu(snapshot([host('web1', 'alice@web1.example:22'), host('db', 'alice@db.example:22')], []));
    expect(menu[0]).toEqual({ label: 'Hitch — no connections', enabled: false });
    const quick = menu.find((i) => i.label === 'Quick connect')!;
    expect(quick.submenu!.map((i) => [i.label, i.action])).toEqual([
      ['web1', { kind: 'quick-connect', hostId: 'web1' }],
      ['db', { kind: 'quick-connect', hostId: 'db' }],
    ]);
    expect(menu.some((i) => i.label === 'Disconnect all')).toBe(false);
    expect(menu.slice(-2).map((i) => i.action)).toEqual([{ kind: 'show' }, { kind: 'quit' }]);
  });

  it('lists live masters with their sessions, and disconnects one or all', () => {
    const menu = trayMenu(
      snapshot(
        [host('web1', 'alice@web1.example:22'), host('web1-alias', 'alice@web1.example:22'), host('db', 'alice@db.example:22')],
        [master('alice@web1.example:22', 'ready', 3), master('alice@db.example:22', 'reconnecting', 0)],
      ),
    );
    expect(menu[0]!.label).toBe('Hitch — 2 connections, 3 sessions');
    expect(menu.find((i) => i.label === 'web1 — 3 sessions')?.submenu).toEqual([{ label: 'Disconnect', action: { kind: 'disconnect', hostId: 'web1' } }]);
    expect(menu.find((i) => i.label === 'db — reconnecting…')).toBeDefined();
    expect(menu.find((i) => i.label === 'Disconnect all')?.action).toEqual({ kind: 'disconnect-all' });
    const quick = menu.find((i) => i.label === 'Quick connect')!.submenu!;
    expect(quick[0]!.label).toBe('web1 — connected, 3 sessions');
    expect(quick[1]!.label).toBe('web1-alias — connected, 3 sessions'); // same master
  });

  it('puts recent hosts first, keeps the menu short and disables unusable hosts', () => {
    const hosts = Array.from({ length: 30 }, (_, i) => host(`h${i}`, `alice@h${i}.example:22`));
    hosts.push(host('broken', null, 'Bad configuration option'));
    const quick = trayMenu(snapshot(hosts, []), ['h7', 'h3'], 15).find((i) => i.label === 'Quick connect')!.submenu!;
    expect(quick).toHaveLength(15);
    expect(quick.slice(0, 3).map((i) => i.label)).toEqual(['h7', 'h3', 'h0']);
    const withBroken = trayMenu(snapshot([host('broken', null, 'Bad configuration option')], [])).find((i) => i.label === 'Quick connect')!.submenu!;
    expect(withBroken[0]).toMatchObject({ label: 'broken — unusable: Bad configuration option', enabled: false });
  });
});

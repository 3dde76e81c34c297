// The links `hitch exec` takes to a ready master (transport/master-links.ts): one per alias
// whose master is ready, following the engine's events, none left from a crashed engine, none
// after the engine stops.
import { mkdir, mkdtemp, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../main/engine/log';
import { masterLinkPath } from '../../main/transport/master-link-path';
import { publishMasterLinks, type MasterLinkSource } from '../../main/transport/master-links';

/** An engine as the links see it: ready control paths by alias, and its change events. */
function fakeEngine(): MasterLinkSource & { set(paths: Record<string, string>): void; reads: number } {
  let paths = new Map<string, string>();
  const listeners = new Set<() => void>();
  return {
    reads: 0,
    readyControlPaths() {
      this.reads++;
      return new Map(paths);
    },
    onControlPathsChanged(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    set(next) {
      paths = new Map(Object.entries(next));
      for (const l of listeners) l();
    },
  };
}

let runtimeDir: string;
const log = createLogger(() => undefined);
beforeEach(async () => {
  runtimeDir = await mkdtemp(join(tmpdir(), 'hitch-links-'));
});
afterEach(async () => {
  await rm(runtimeDir, { recursive: true, force: true });
});

const links = async (): Promise<Record<string, string>> => {
  const dir = join(runtimeDir, 'masters');
  const names = await readdir(dir);
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readlink(join(dir, n))] as const)));
};

describe('master links', () => {
  it('name each ready master by alias, follow its changes, and go with the engine', async () => {
    // Left by an engine that crashed: not trusted, removed.
    await mkdir(join(runtimeDir, 'masters'), { recursive: true });
    await writeFile(join(runtimeDir, 'masters', 'old'), '');
    const engine = fakeEngine();
    engine.set({ box: '/run/s/aaaa', 'we/ird': '/run/s/bbbb' });
    const published = publishMasterLinks(engine, runtimeDir, log);
    await published.settled();
    expect(await links()).toEqual({ box: '/run/s/aaaa', 'we%2Fird': '/run/s/bbbb' });
    expect(((await stat(join(runtimeDir, 'masters'))).mode & 0o777).toString(8)).toBe('700');

    engine.set({ 'we/ird': '/run/s/cccc', other: '/run/s/aaaa' }); // box went down, we/ird moved, other came up
    await published.settled();
    expect(await links()).toEqual({ 'we%2Fird': '/run/s/cccc', other: '/run/s/aaaa' });

    // The runtime directory cleaned meanwhile: the links come back with the next change.
    await rm(join(runtimeDir, 'masters'), { recursive: true });
    engine.set({ 'we/ird': '/run/s/cccc' });
    await published.settled();
    expect(await links()).toEqual({ 'we%2Fird': '/run/s/cccc' });

    await published.close();
    await expect(readdir(join(runtimeDir, 'masters'))).rejects.toThrow(/ENOENT/);
  });

  it('make one pass for a burst of changes, ending as the last one says', async () => {
    const engine = fakeEngine();
    const published = publishMasterLinks(engine, runtimeDir, log);
    for (let i = 0; i < 50; i++) engine.set({ box: `/run/s/${i}` });
    await published.settled();
    expect(await links()).toEqual({ box: '/run/s/49' });
    expect(engine.reads).toBe(1);
    await published.close();
  });

  it('give no link where its path would be too long for a socket, keep . and .. inside, and tell Prod from prod anywhere', () => {
    expect(masterLinkPath('/run/user/1000/hitch', 'box')).toBe('/run/user/1000/hitch/masters/box');
    // On a case-insensitive file system (macOS) the two names must still differ.
    expect(masterLinkPath('/run/user/1000/hitch', 'Prod')).toBe('/run/user/1000/hitch/masters/%50rod');
    expect(masterLinkPath('/run/user/1000/hitch', '..')).toBe('/run/user/1000/hitch/masters/%2E%2E');
    expect(masterLinkPath('/run/user/1000/hitch', '../x')).toBe('/run/user/1000/hitch/masters/..%2Fx');
    expect(masterLinkPath('/run/user/1000/hitch', 'h'.repeat(80))).toBeNull();
  });
});

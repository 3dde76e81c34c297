// The links to ready masters that `hitch exec` takes (transport/master-links.ts), kept by the
// engine socket's server from a real engine: every alias of a ready master is linked to its
// control socket, none while the host list reloads (an alias may name another host after it),
// none once the master is down or the engine stops.
import { chmod, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localApi } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import { serveEngineSocket, type EngineSocketServer } from '../../main/transport/engine-socket';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';

let sshd: Sshd;
let other: Sshd;
let t: TestEngine;
let dir: string;
let server: EngineSocketServer;
/** While this file exists, the engine's `ssh -G` waits: a host-list reload stays under way. */
let hold: string;

beforeAll(async () => {
  [sshd, other] = await Promise.all([startSshd(), startSshd()]);
  dir = await mkdtemp(join(tmpdir(), 'hitch-links-'));
  hold = join(dir, 'hold');
  const ssh = join(dir, 'ssh');
  await writeFile(ssh, `#!/bin/sh\nwhile [ -e '${hold}' ]; do sleep 0.05; done\nexec ssh "$@"\n`);
  await chmod(ssh, 0o755);
  // `box` and `alias` name one destination, so one master; `far` another.
  t = await testEngine(sshd.clientConfig('box') + sshd.clientConfig('alias') + other.clientConfig('far'), { processTrees: false, sshBinary: ssh });
  server = await serveEngineSocket({ api: localApi(createRouter(t.engine, t.engine.options.log)), runtimeDir: dir, log: t.engine.options.log, masters: t.engine });
}, 30_000);

afterAll(async () => {
  await server?.close();
  await t?.close();
  await Promise.all([sshd?.stop(), other?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function links(): Promise<Record<string, string>> {
  const names = await readdir(join(dir, 'masters')).catch(() => null);
  if (names === null) return {};
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readlink(join(dir, 'masters', n))] as const)));
}

describe('links to ready masters', () => {
  it('name each alias of a ready master, none while the host list reloads, none once it is down or the engine stops', async () => {
    expect(await links()).toEqual({});
    const master = await t.engine.connect('box');
    expect(master.controlPath).not.toBeNull();
    await expect.poll(links).toEqual({ box: master.controlPath, alias: master.controlPath });

    // Reloading: until the new list says where each alias goes, no alias is linked. The reload
    // is held (its `ssh -G` waits) until the links are seen gone: a quick one would otherwise
    // be over between two looks.
    await writeFile(hold, '');
    const reloading = t.engine.reloadCatalog();
    try {
      expect(t.engine.readyControlPaths().size).toBe(0);
      await expect.poll(links).toEqual({});
    } finally {
      await rm(hold, { force: true });
    }
    await reloading;
    await expect.poll(links).toEqual({ box: master.controlPath, alias: master.controlPath });

    const far = await t.engine.connect('far');
    await expect.poll(links).toEqual({ box: master.controlPath, alias: master.controlPath, far: far.controlPath });
    await t.engine.disconnect('box');
    await expect.poll(links).toEqual({ far: far.controlPath });

    await server.close();
    await expect(readdir(join(dir, 'masters'))).rejects.toThrow(/ENOENT/);
  });
});

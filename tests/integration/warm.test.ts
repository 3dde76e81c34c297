// Hosts kept warm (settings.warmHosts): their master connects by itself when the engine starts
// and when marked, only where logging in needs nobody, and stays up past the idle timeout.
// A host that needs a password is left alone: no prompt, no login attempt that would ask.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../main/engine/engine';
import { createLogger } from '../../main/engine/log';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { testKeychain } from '../fixtures/engine';

describe('hosts kept warm', () => {
  let keyServer: Sshd;
  let passwordServer: Sshd;
  let dataDir: string;
  const engines: Engine[] = [];

  beforeAll(async () => {
    [keyServer, passwordServer] = await Promise.all([
      startSshd(),
      startSshd({ extraConfig: ['PasswordAuthentication yes', 'PubkeyAuthentication no'] }),
    ]);
    dataDir = await mkdtemp(join(tmpdir(), 'hitch-warm-'));
    const config = [
      keyServer.clientConfig('fav'),
      keyServer.clientConfig('plain'),
      passwordServer.clientConfig('pw').replace(`IdentityFile ${passwordServer.clientKey}`, 'IdentityFile /nonexistent/id_ed25519'),
    ].join('\n');
    await writeFile(join(dataDir, 'ssh_config'), config);
  });
  afterAll(async () => {
    for (const e of engines) await e.shutdown();
    await Promise.all([keyServer?.stop(), passwordServer?.stop()]);
    await rm(dataDir, { recursive: true, force: true });
  });

  /** An engine on dataDir, as Hitch starting up; idle masters close after 300 ms. */
  function startEngine(): { engine: Engine; logLines: string[] } {
    const logLines: string[] = [];
    const engine = new Engine({
      sshConfigPath: join(dataDir, 'ssh_config'),
      sshBinary: 'ssh',
      dataDir,
      knownHostsPath: join(dataDir, 'known_hosts'),
      authSock: undefined,
      secrets: testKeychain(),
      idleTimeoutMs: 300,
      controlSocketDir: null,
      durableShells: false,
      log: createLogger((line) => logLines.push(line), 'debug'),
    });
    engines.push(engine);
    return { engine, logLines };
  }

  const masterOf = async (engine: Engine, sshd: Sshd) => (await engine.snapshot()).masters.find((m) => m.id.endsWith(`:${sshd.port}`));

  it('connects a favourite at start without being asked, keeps it past the idle timeout, and leaves a password host alone', async () => {
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({ version: 1, settings: { warmHosts: ['fav', 'pw'] } }));
    const loginsBefore = await keyServer.acceptedLogins();
    const { engine, logLines } = startEngine();
    const prompts: string[] = [];
    engine.onEvent((e) => {
      if (e.event === 'prompt.opened') prompts.push(e.payload.kind);
    });

    await expect.poll(async () => (await masterOf(engine, keyServer))?.state, { timeout: 10_000 }).toBe('ready');
    expect(await keyServer.acceptedLogins()).toBe(loginsBefore + 1);
    // The password host would need a person: it is not connected, and nobody was asked.
    await expect.poll(() => logLines.some((l) => l.includes('warm host not connected') && l.includes('pw')), { timeout: 10_000 }).toBe(true);
    expect(prompts).toEqual([]);
    expect((await masterOf(engine, passwordServer))?.state).not.toBe('ready');

    // Past the idle timeout (300 ms) with no session, the warm master is still up…
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await masterOf(engine, keyServer))?.state).toBe('ready');
    // …and the first shell rides it: no second login.
    const s = await engine.openSession('fav', { kind: 'shell', cols: 80, rows: 24 });
    expect(s.state).toBe('open');
    expect(await keyServer.acceptedLogins()).toBe(loginsBefore + 1);
    engine.closeSession(s.id);
    await engine.shutdown();
  }, 30_000);

  it('connects a host as soon as it is marked warm, and lets it idle out once unmarked', async () => {
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({ version: 1, settings: {} }));
    const { engine } = startEngine();
    await engine.getSettings();
    await new Promise((r) => setTimeout(r, 300));
    expect((await masterOf(engine, keyServer))?.state ?? 'closed').not.toBe('ready');

    await engine.updateSettings({ warmHosts: ['plain'] });
    await expect.poll(async () => (await masterOf(engine, keyServer))?.state, { timeout: 10_000 }).toBe('ready');

    // Unmarked: the next time it goes idle (a session opened and closed), it closes after the timeout.
    await engine.updateSettings({ warmHosts: [] });
    const s = await engine.openSession('plain', { kind: 'shell', cols: 80, rows: 24 });
    engine.closeSession(s.id);
    await expect.poll(async () => (await masterOf(engine, keyServer))?.state, { timeout: 10_000 }).toBe('closed');
    await engine.shutdown();
  }, 30_000);

  it('connects at start a host with saved forwards, so they are back without being asked', async () => {
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({ version: 1, settings: {} }));
    const first = startEngine().engine;
    const saved = await first.openForward({ hostId: 'plain', kind: 'dynamic', listenPort: 0, save: true });
    await first.shutdown();

    const { engine } = startEngine(); // Hitch started again: nobody asks for anything
    await expect.poll(async () => (await engine.listForwards()).map((f) => f.state), { timeout: 10_000 }).toEqual(['active']);
    const [forward] = await engine.listForwards();
    expect(forward).toMatchObject({ hostId: 'plain', kind: 'dynamic', saved: true });
    expect((await masterOf(engine, keyServer))?.state).toBe('ready');
    expect(saved.saved).toBe(true);
    await engine.cancelForward(forward!.id);
    await engine.shutdown();
  }, 30_000);

  it('does not reconnect a warm host the person disconnected when the computer wakes', async () => {
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({ version: 1, settings: { warmHosts: ['fav'] } }));
    const { engine } = startEngine();
    await expect.poll(async () => (await masterOf(engine, keyServer))?.state, { timeout: 10_000 }).toBe('ready');
    await engine.disconnect('fav');
    await expect.poll(async () => (await masterOf(engine, keyServer))?.state, { timeout: 5_000 }).toBe('closed');
    engine.afterWake(60_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await masterOf(engine, keyServer))?.state).toBe('closed');
    await engine.connect('fav'); // the person connects it again: warm from then on
    expect((await masterOf(engine, keyServer))?.state).toBe('ready');
    await engine.shutdown();
  }, 30_000);
});

// The faults of the hardening matrix that faults.test.ts and masters.test.ts leave out: a
// network that resets connections, a server that comes back with another host key, an
// ssh-agent that dies, a person who keeps typing the wrong password, a data directory that is
// full or read-only, and the engine killed in the middle of a save. For each: nothing already
// saved or shown is lost, and the person is told precisely what went wrong.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../main/engine/engine';
import { createLogger } from '../../main/engine/log';
import { DEFAULT_SETTINGS } from '../../main/engine/config/settings';
import { keygen, startSshd, TEST_PASSWORD, type Sshd } from '../fixtures/sshd';
import { masterOf, sessionView, shellAnswers, testEngine, testKeychain } from '../fixtures/engine';
import { transpileSources } from '../fixtures/transpiled';
import { failure } from '../fixtures/failure';
import { behindProxy, startProxy, type TcpProxy } from '../fixtures/tcp-proxy';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const SHELL = { kind: 'shell', cols: 80, rows: 24 } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const count = (text: string, pattern: RegExp): number => (text.match(new RegExp(pattern.source, 'gm')) ?? []).length;


async function fingerprintOf(pubFile: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-l', '-f', pubFile]);
  return stdout.split(' ')[1]!;
}

describe('a network that resets connections mid-session', () => {
  it('reconnects by itself after each reset, marks the sessions it cut, and leaves other hosts alone', async () => {
    const sshd = await startSshd();
    const proxy = await startProxy({ targetPort: sshd.port });
    const t = await testEngine((await behindProxy(sshd, proxy, 'flaky')) + sshd.clientConfig('steady'));
    try {
      const steady = await t.engine.openSession('steady', SHELL);
      await shellAnswers(t, steady.id);
      for (let round = 1; round <= 3; round++) {
        const cut = await t.engine.openSession('flaky', SHELL);
        await shellAnswers(t, cut.id);
        proxy.resetAll(); // RST to both ends

        // The first reconnect starts at once, and may be quick: the state seen while it runs.
        let dropped: Awaited<ReturnType<typeof masterOf>>;
        await expect.poll(async () => (dropped = await masterOf(t, proxy.port))?.state, { timeout: 5_000, interval: 5 }).not.toBe('ready');
        expect(dropped).toMatchObject({ state: 'reconnecting', error: { code: 'network' } });
        // Node reports a reset connection as an error, or now and then (10 in 300 resets of a
        // socket being written to, measured here) as a plain end: "lost" then.
        expect([`Connection to 127.0.0.1 port ${proxy.port} was reset.`, 'The connection to flaky was lost.']).toContain(dropped?.error?.message);
        expect(dropped?.reconnectAt).toBeGreaterThan(Date.now() - 100);
        // The cut session stays listed, marked, with its output.
        await expect.poll(async () => (await sessionView(t, cut.id))?.state).toBe('disconnected');
        expect(t.engine.attachSession(cut.id, 'test').data).toMatch(/alive-\d+/);
        await shellAnswers(t, steady.id);

        await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 10_000, interval: 50 }).toBe('ready');
        expect((await masterOf(t, proxy.port))?.error).toBeNull();
      }
      // One drop per reset, each logged as a reset or (as above) as a connection lost.
      const drops = [`Connection to 127.0.0.1 port ${proxy.port} was reset.`, 'The connection to flaky was lost.'];
      expect(t.logLines.filter((l) => l.includes('"master dropped"') && drops.some((d) => l.includes(d)))).toHaveLength(3);
      const after = await t.engine.openSession('flaky', SHELL);
      await shellAnswers(t, after.id);
      await shellAnswers(t, steady.id);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 1, sessions: 1 });
      expect(await sshd.acceptedLogins()).toBe(1 + 4); // steady once; flaky at first and after each reset
    } finally {
      await t.close();
      await proxy.close();
      await sshd.stop();
    }
  });

  it('keeps trying, with backoff, when a reset also cuts its reconnect attempt', async () => {
    const sshd = await startSshd();
    const proxy = await startProxy({ targetPort: sshd.port });
    const t = await testEngine(await behindProxy(sshd, proxy, 'flapping'), { timing: { connectTimeoutMs: 5_000 } });
    try {
      const s = await t.engine.openSession('flapping', SHELL);
      await shellAnswers(t, s.id);
      // A slow link makes the reconnect's handshake last long enough to be cut in the middle.
      proxy.setDelay(300);
      proxy.resetAll();
      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 5_000, interval: 20 }).toBe('reconnecting');
      const firstTry = (await masterOf(t, proxy.port))!.reconnectAt!;
      await sleep(firstTry - Date.now() + 50);
      await expect.poll(() => proxy.connections, { timeout: 5_000, interval: 10 }).toBe(1); // the attempt is under way
      await sleep(100); // well inside its handshake, which takes several 600 ms round trips
      proxy.resetAll();
      proxy.setDelay(0);
      await expect.poll(async () => (await masterOf(t, proxy.port))?.reconnectAt, { timeout: 5_000, interval: 20 }).toBeGreaterThan(firstTry);
      const retrying = await masterOf(t, proxy.port);
      expect(retrying?.state).toBe('reconnecting');
      expect(retrying?.error?.message).toMatch(new RegExp(`127\\.0\\.0\\.1 port ${proxy.port} (was reset|closed the connection during setup)`));
      // The first try was at once; the second waits 1 s: not an immediate loop.
      expect(retrying!.reconnectAt! - Date.now()).toBeGreaterThan(500);
      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 10_000, interval: 50 }).toBe('ready');
      const again = await t.engine.openSession('flapping', SHELL);
      await shellAnswers(t, again.id);
      expect((await sessionView(t, s.id))?.state).toBe('disconnected');
    } finally {
      await t.close();
      await proxy.close();
      await sshd.stop();
    }
  });
});

describe('a server restarted with a new host key while a master is up', () => {
  it('refuses the automatic reconnect as a changed host key, naming both fingerprints, and does not retry', async () => {
    const sshd = await startSshd();
    const t = await testEngine(sshd.clientConfig('rekeyed'));
    try {
      const s = await t.engine.openSession('rekeyed', SHELL);
      await shellAnswers(t, s.id);
      const oldFingerprint = await fingerprintOf(sshd.knownHosts);
      const newKey = join(sshd.dir, 'new_host_key');
      await keygen(newKey);
      const newFingerprint = await fingerprintOf(`${newKey}.pub`);
      const knownHostsBefore = await readFile(sshd.knownHosts, 'utf8');

      await sshd.kill();
      await rename(newKey, join(sshd.dir, 'host_ed25519'));
      await rename(`${newKey}.pub`, join(sshd.dir, 'host_ed25519.pub'));
      await sshd.start();

      await expect.poll(async () => (await masterOf(t, sshd.port))?.state, { timeout: 10_000, interval: 50 }).toBe('failed');
      const master = await masterOf(t, sshd.port);
      expect(master?.error?.code).toBe('host-key-changed');
      expect(master?.error?.message).toMatch(/CHANGED/);
      expect(master?.error?.message).toContain(`It offered ssh-ed25519 ${newFingerprint}`);
      expect(master?.error?.message).toContain(`known_hosts has ${oldFingerprint} (${sshd.knownHosts}:1)`);
      expect(master?.reconnectAt).toBeNull();
      expect((await sessionView(t, s.id))?.state).toBe('disconnected');
      expect(t.logLines.some((l) => l.includes('"master failed"') && l.includes('"code":"host-key-changed"'))).toBe(true);

      // No loop: the backoff would have tried again within 2 s.
      const connections = count(await readFile(sshd.logFile, 'utf8'), /Connection from /);
      expect(connections).toBeGreaterThanOrEqual(2); // the first login and the refused reconnect
      await sleep(2_500);
      expect(count(await readFile(sshd.logFile, 'utf8'), /Connection from /)).toBe(connections);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'failed', error: { code: 'host-key-changed' }, reconnectAt: null });

      // Never accepted: no login, no key recorded, and Connect says the same.
      expect(await sshd.acceptedLogins()).toBe(1);
      expect(await readFile(sshd.knownHosts, 'utf8')).toBe(knownHostsBefore);
      await expect(stat(join(t.dir, 'known_hosts'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await failure(t.engine.connect('rekeyed'))).code).toBe('host-key-changed');
      expect((await t.engine.snapshot()).prompts).toEqual([]);
    } finally {
      await t.close();
      await sshd.stop();
    }
  });
});

describe('an ssh-agent that goes away mid-session', () => {
  let sshd: Sshd;
  let proxy: TcpProxy;
  let agentDir: string;
  /** A key the server accepts whose private half only the agents hold. */
  let agentKey: string;
  const agents: ChildProcess[] = [];

  /** An ssh-agent holding agentKey, on a socket of its own. */
  async function startAgent(): Promise<{ sock: string; agent: ChildProcess }> {
    const sock = join(agentDir, `agent-${agents.length}.sock`);
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    agents.push(agent);
    while (!(await stat(sock).then((s) => s.isSocket(), () => false))) await sleep(20);
    await run('ssh-add', ['-q', agentKey], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
    return { sock, agent };
  }

  async function killed(agent: ChildProcess, signal: NodeJS.Signals): Promise<void> {
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill(signal);
    await exited;
  }

  beforeAll(async () => {
    sshd = await startSshd();
    proxy = await startProxy({ targetPort: sshd.port });
    agentDir = await mkdtemp(join(tmpdir(), 'hitch-agent-'));
    agentKey = join(agentDir, 'id_in_agent');
    await appendFile(join(sshd.dir, 'authorized_keys'), (await keygen(agentKey)) + '\n');
  });
  afterAll(async () => {
    for (const agent of agents) if (agent.exitCode === null && agent.signalCode === null) agent.kill();
    await proxy?.close();
    await sshd?.stop();
    await rm(agentDir, { recursive: true, force: true });
  });

  /** `alias` behind the proxy, logging in with the agent at `sock` and then `identityFile`. */
  async function agentConfig(alias: string, sock: string, identityFile: string): Promise<string> {
    return (await behindProxy(sshd, proxy, alias))
      .replace(`IdentityFile ${sshd.clientKey}`, `IdentityFile ${identityFile}`)
      .replace('IdentityAgent none', `IdentityAgent ${sock}`)
      .replace('IdentitiesOnly yes', 'IdentitiesOnly no');
  }

  it('says the agent is unreachable when a reconnect needs the agent that was killed', async () => {
    const { sock, agent } = await startAgent();
    const t = await testEngine((await agentConfig('agentonly', sock, '/nonexistent/id_ed25519')) + sshd.clientConfig('bystander'));
    try {
      const bystander = await t.engine.openSession('bystander', SHELL);
      const s = await t.engine.openSession('agentonly', SHELL);
      await shellAnswers(t, s.id);
      await killed(agent, 'SIGKILL'); // crashed: its socket file is left behind, refusing connections
      proxy.resetAll();

      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 10_000, interval: 50 }).toBe('failed');
      const master = await masterOf(t, proxy.port);
      expect(master?.error?.code).toBe('auth');
      expect(master?.error?.message).toContain(`ssh-agent not reachable at ${sock}`);
      expect(master?.error?.message).toMatch(/Logging in needs a person: use Connect\.$/);
      expect(master?.reconnectAt).toBeNull();
      expect((await sessionView(t, s.id))?.state).toBe('disconnected');
      // The engine carries on: another host works, and Connect says the same again.
      await shellAnswers(t, bystander.id);
      const err = await failure(t.engine.connect('agentonly'));
      expect(err.code).toBe('auth');
      expect(err.message).toContain(`ssh-agent not reachable at ${sock}`);
    } finally {
      await t.close();
    }
  });

  it('says the agent is unreachable when the agent was stopped and its socket removed', async () => {
    const { sock, agent } = await startAgent();
    const t = await testEngine(await agentConfig('agentstopped', sock, '/nonexistent/id_ed25519'));
    try {
      const s = await t.engine.openSession('agentstopped', SHELL);
      await shellAnswers(t, s.id);
      await killed(agent, 'SIGTERM');
      await expect(stat(sock)).rejects.toMatchObject({ code: 'ENOENT' });
      proxy.resetAll();
      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 10_000, interval: 50 }).toBe('failed');
      expect((await masterOf(t, proxy.port))?.error).toMatchObject({ code: 'auth', message: expect.stringContaining(`ssh-agent not reachable at ${sock}`) });
    } finally {
      await t.close();
    }
  });

  it('reconnects with the key file when the agent it logged in with was killed', async () => {
    const { sock, agent } = await startAgent();
    const t = await testEngine(await agentConfig('agentthenkey', sock, sshd.clientKey));
    try {
      const s = await t.engine.openSession('agentthenkey', SHELL);
      await shellAnswers(t, s.id);
      const [agentFingerprint, fileFingerprint] = await Promise.all([fingerprintOf(`${agentKey}.pub`), fingerprintOf(`${sshd.clientKey}.pub`)]);
      const accepted = async () => [...(await readFile(sshd.logFile, 'utf8')).matchAll(/Accepted publickey for .* ED25519 (SHA256:\S+)/g)].map((m) => m[1]);
      expect((await accepted()).at(-1)).toBe(agentFingerprint); // the agent comes first, as with ssh

      await killed(agent, 'SIGKILL');
      const before = t.events.length;
      proxy.resetAll();
      // Seen in its events: a reconnect can be over between two polls of its state.
      const reconnecting = (): boolean => t.events.slice(before).some((e) => e.event === 'master.changed' && e.payload.id.endsWith(`:${proxy.port}`) && e.payload.state === 'reconnecting');
      await expect.poll(reconnecting, { timeout: 5_000, interval: 20 }).toBe(true);
      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 10_000, interval: 50 }).toBe('ready');
      await expect.poll(async () => (await accepted()).at(-1)).toBe(fileFingerprint);
      expect((await sessionView(t, s.id))?.state).toBe('disconnected');
      const again = await t.engine.openSession('agentthenkey', SHELL);
      await shellAnswers(t, again.id);
    } finally {
      await t.close();
    }
  });
});

describe('a person who types the wrong password three times', () => {
  it('stops asking after the third, as ssh does, with an authentication error, and never retries by itself', async () => {
    const sshd = await startSshd({ extraConfig: ['PasswordAuthentication yes', 'PubkeyAuthentication no'] });
    const config = sshd.clientConfig('pw').replace(`IdentityFile ${sshd.clientKey}`, 'IdentityFile /nonexistent/id_ed25519');
    const t = await testEngine(config);
    const failed = async () => count(await readFile(sshd.logFile, 'utf8'), /Failed password for /);
    try {
      const connecting = failure(t.engine.connect('pw'));
      for (const wrong of ['wrong-1', 'wrong-2', 'wrong-3']) {
        const prompt = await t.nextPrompt('password');
        t.engine.answerPrompt(prompt.id, { answers: [wrong], remember: false, choice: null });
        await expect.poll(async () => (await t.engine.snapshot()).prompts.some((p) => p.id === prompt.id)).toBe(false);
      }
      const err = await connecting;
      expect(err.code).toBe('auth');
      expect(err.message).toMatch(new RegExp(`^Authentication failed for ${sshd.user}@127\\.0\\.0\\.1: the server refused every method tried \\(.*password\\)\\.$`));
      expect(t.events.filter((e) => e.event === 'prompt.opened')).toHaveLength(3);
      expect((await t.engine.snapshot()).prompts).toEqual([]);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'failed', error: { code: 'auth' }, reconnectAt: null });

      await expect.poll(failed).toBe(3);
      await sleep(2_500); // a reconnect loop would try again within this
      expect(await failed()).toBe(3);
      expect(await sshd.acceptedLogins()).toBe(0);
      expect((await t.engine.snapshot()).prompts).toEqual([]);
      expect(t.logLines.filter((l) => /wrong-\d/.test(l))).toEqual([]);

      // Connect asks again, from the start.
      const retry = t.engine.connect('pw');
      const prompt = await t.nextPrompt('password');
      expect(prompt.message).toMatch(/^Log in to pw /);
      t.engine.answerPrompt(prompt.id, { answers: [TEST_PASSWORD], remember: false, choice: null });
      expect(await retry).toMatchObject({ state: 'ready', authMethod: 'password' });
    } finally {
      await t.close();
      await sshd.stop();
    }
  });
});

// Root writes through any permission bits, so a tiny tmpfs stands in for the data directory:
// filled up for a full disk, remounted read-only for a read-only one.
const tmpfsProblem = ((): string | null => {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const probe = mkdtempSync(join(tmpdir(), 'hitch-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return null;
  } catch {
    return 'cannot mount a tmpfs here';
  } finally {
    rmdirSync(probe);
  }
})();

describe.skipIf(tmpfsProblem !== null)(`a data directory that is full or read-only${tmpfsProblem ? ` (skipped: ${tmpfsProblem})` : ''}`, () => {
  let dataDir: string;
  let configDir: string;
  const engines: Engine[] = [];

  /** An engine keeping its files in dataDir, as Hitch would after a restart. */
  function engineOnDataDir(): { engine: Engine; logLines: string[] } {
    const logLines: string[] = [];
    const engine = new Engine({
      sshConfigPath: join(configDir, 'ssh_config'),
      sshBinary: 'ssh',
      dataDir,
      knownHostsPath: join(dataDir, 'known_hosts'),
      authSock: undefined,
      secrets: testKeychain(),
      idleTimeoutMs: null,
      controlSocketDir: null,
      log: createLogger((line) => logLines.push(line), 'debug'),
    });
    engines.push(engine);
    return { engine, logLines };
  }

  const savedHosts = async (engine: Engine) =>
    (await engine.snapshot()).catalog.hosts.filter((h) => h.source === 'app').map((h) => h.id);

  beforeAll(async () => {
    configDir = await mkdtemp(join(tmpdir(), 'hitch-fullcfg-'));
    await writeFile(join(configDir, 'ssh_config'), '');
  });
  afterAll(async () => {
    await rm(configDir, { recursive: true, force: true });
  });

  async function mountData(): Promise<void> {
    dataDir = await mkdtemp(join(tmpdir(), 'hitch-fulldata-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0700', 'tmpfs', dataDir]);
  }
  async function unmountData(): Promise<void> {
    for (const e of engines.splice(0)) await e.shutdown();
    await run('umount', [dataDir]).catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }

  it('refuses a new host and a settings change on a full disk, naming the file, keeps what was saved, and saves again once there is room', async () => {
    await mountData();
    try {
      const { engine, logLines } = engineOnDataDir();
      await engine.addHost({ id: 'kept', hostname: 'kept.example' });
      await engine.updateSettings({ terminalFontSize: 15 });
      const hostsBefore = await readFile(join(dataDir, 'hosts.json'), 'utf8');
      const settingsBefore = await readFile(join(dataDir, 'settings.json'), 'utf8');

      // Fill the file system to the last byte.
      const filler = join(dataDir, 'filler');
      await writeFile(filler, '');
      for (;;) {
        const full = await appendFile(filler, Buffer.alloc(1024)).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
        if (full) break;
      }

      const hostErr = await failure(engine.addHost({ id: 'lost', hostname: 'lost.example' }));
      expect(hostErr.message).toMatch(new RegExp(`^Could not save hosts to ${dataDir}/hosts\\.json: ENOSPC: no space left on device`));
      const settingsErr = await failure(engine.updateSettings({ theme: 'dark' }));
      expect(settingsErr.message).toMatch(new RegExp(`^Could not save settings to ${dataDir}/settings\\.json: ENOSPC: no space left on device`));
      expect(logLines.some((l) => l.includes('"settings not saved"') && l.includes('ENOSPC'))).toBe(true);

      // What was saved is untouched, and no half-written file is left behind.
      expect(await readFile(join(dataDir, 'hosts.json'), 'utf8')).toBe(hostsBefore);
      expect(await readFile(join(dataDir, 'settings.json'), 'utf8')).toBe(settingsBefore);
      expect((await readdir(dataDir)).sort()).toEqual(['filler', 'hosts.json', 'settings.json']);
      expect(await savedHosts(engine)).toEqual(['kept']);

      await rm(filler);
      await engine.addHost({ id: 'added', hostname: 'added.example' });
      await engine.updateSettings({ notifications: false });
      const { engine: restarted } = engineOnDataDir();
      expect(await savedHosts(restarted)).toEqual(['kept', 'added']);
      // The change refused on the full disk stayed in effect and was saved with the next one.
      expect(await restarted.getSettings()).toEqual({
        settings: { ...DEFAULT_SETTINGS, terminalFontSize: 15, theme: 'dark', notifications: false },
        warning: null,
      });
    } finally {
      await unmountData();
    }
  });

  it('refuses changes in a read-only data directory, naming the file, and saves again once it is writable', async () => {
    await mountData();
    try {
      const { engine } = engineOnDataDir();
      await engine.addHost({ id: 'kept', hostname: 'kept.example' });
      await engine.updateSettings({ terminalFontSize: 15 });
      const hostsBefore = await readFile(join(dataDir, 'hosts.json'), 'utf8');
      const settingsBefore = await readFile(join(dataDir, 'settings.json'), 'utf8');

      await run('mount', ['-o', 'remount,ro', dataDir]);
      const hostErr = await failure(engine.addHost({ id: 'lost', hostname: 'lost.example' }));
      expect(hostErr.message).toMatch(new RegExp(`^Could not save hosts to ${dataDir}/hosts\\.json: EROFS: read-only file system`));
      const updateErr = await failure(engine.updateHost('kept', { port: 2222 }));
      expect(updateErr.message).toMatch(/^Could not save hosts to .*hosts\.json: EROFS/);
      const settingsErr = await failure(engine.updateSettings({ theme: 'dark' }));
      expect(settingsErr.message).toMatch(new RegExp(`^Could not save settings to ${dataDir}/settings\\.json: EROFS: read-only file system`));
      expect(await readFile(join(dataDir, 'hosts.json'), 'utf8')).toBe(hostsBefore);
      expect(await readFile(join(dataDir, 'settings.json'), 'utf8')).toBe(settingsBefore);
      expect((await engine.snapshot()).catalog.hosts.find((h) => h.id === 'kept')?.port).toBe(22);

      await run('mount', ['-o', 'remount,rw', dataDir]);
      await engine.addHost({ id: 'added', hostname: 'added.example' });
      await engine.updateSettings({ notifications: false });
      const { engine: restarted } = engineOnDataDir();
      expect(await savedHosts(restarted)).toEqual(['kept', 'added']);
      expect((await restarted.getSettings()).settings).toMatchObject({ terminalFontSize: 15, theme: 'dark', notifications: false });
    } finally {
      await unmountData();
    }
  });
});

describe('the engine killed with SIGKILL while it saves', () => {
  let dir: string;

  /** What the saving process writes as its n-th version of each file. */
  const settingsVersion = (n: number) => ({ ...DEFAULT_SETTINGS, recentHosts: [`v${n}`], terminalFontSize: 6 + (n % 43) });
  const hostsVersion = (n: number) => [
    { id: 'kept', hostname: 'kept.example', rememberSecrets: false },
    { id: 'busy', hostname: 'busy.example', port: 1000 + n, rememberSecrets: false },
  ];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hitch-sigkill-'));
    // The real stores, transpiled to CommonJS, in the same layout so relative imports resolve.
    await transpileSources(dir);
    // Loads what is on disk (a restart), announces it, then saves new versions without pause.
    await writeFile(
      join(dir, 'saver.cjs'),
      `
      const { appendFileSync } = require('node:fs');
      const { HostStore } = require('./main/engine/config/host-store.js');
      const { SettingsStore } = require('./main/engine/config/settings.js');
      const { silentLogger } = require('./main/engine/log.js');
      (async () => {
        const hosts = new HostStore('data/hosts.json', silentLogger);
        const settings = new SettingsStore('data/settings.json', silentLogger);
        const { warning } = await hosts.load();
        await settings.load();
        const fromSettings = Number((settings.get().recentHosts[0] ?? 'v0').slice(1));
        const fromHosts = (hosts.get('busy')?.port ?? 1000) - 1000;
        let n = Math.max(fromSettings, fromHosts);
        if (!hosts.get('kept')) await hosts.add({ id: 'kept', hostname: 'kept.example' });
        if (!hosts.get('busy')) await hosts.add({ id: 'busy', hostname: 'busy.example', port: 1000 + n });
        process.stdout.write(JSON.stringify({ started: n, warnings: [warning, settings.warning] }) + '\\n');
        for (;;) {
          n++;
          appendFileSync('journal', n + '\\n'); // before the saves start: the versions that may be on disk
          await Promise.all([
            settings.update({ recentHosts: ['v' + n], terminalFontSize: 6 + (n % 43) }),
            hosts.update('busy', { port: 1000 + n }),
          ]);
        }
      })().catch((err) => {
        process.stdout.write(JSON.stringify({ error: String(err) }) + '\\n');
        process.exit(1);
      });
      `,
    );
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'ssh_config'), '');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts the saver; resolves with what it loaded once it is saving. */
  function startSaver(): { child: ChildProcess; started: Promise<{ started: number; warnings: (string | null)[] }> } {
    const child = spawn(process.execPath, ['saver.cjs'], {
      cwd: dir,
      env: { ...process.env, NODE_PATH: join(root, 'node_modules') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const started = new Promise<{ started: number; warnings: (string | null)[] }>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const line = out.split('\n')[0]!;
        if (out.includes('\n')) {
          const msg = JSON.parse(line) as { started: number; warnings: (string | null)[]; error?: string };
          if (msg.error) reject(new Error(msg.error));
          else resolve(msg);
        }
      });
      child.once('exit', (code, signal) => reject(new Error(`saver exited early: ${code ?? signal}`)));
    });
    return { child, started };
  }

  it('leaves each file whole, the old version or a new one, however often it is killed, and a new engine starts with them', async () => {
    const journal = join(dir, 'journal');
    // Each file's version as the last kill left it: a kill may land between the two saves.
    let previous = { settings: 0, hosts: 0 };
    for (let kill = 1; kill <= 20; kill++) {
      const { child, started } = startSaver();
      const loaded = await started;
      expect(loaded.warnings).toEqual([null, null]); // the files the last kill left were usable
      expect(loaded.started).toBe(Math.max(previous.settings, previous.hosts));
      await sleep(Math.random() * 150);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;

      const written = (await readFile(journal, 'utf8')).split('\n').filter(Boolean).map(Number);
      const newest = Math.max(previous.settings, previous.hosts, ...written);
      // A kill before the first save leaves no file: the old version, when there was none.
      const doc = async <T>(name: string, none: T): Promise<T> =>
        readFile(join(dir, 'data', name), 'utf8').then(
          (text) => JSON.parse(text) as T,
          (err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
            return none;
          },
        );
      const settingsDoc = await doc('settings.json', { version: 1, settings: settingsVersion(0) });
      const hostsDoc = await doc('hosts.json', { version: 1, hosts: hostsVersion(0) });
      const settingsN = Number(settingsDoc.settings.recentHosts[0]?.slice(1) ?? 0);
      const hostsN = (hostsDoc.hosts[1]?.port ?? 0) - 1000;
      expect(settingsN).toBeGreaterThanOrEqual(previous.settings);
      expect(hostsN).toBeGreaterThanOrEqual(previous.hosts);
      expect(settingsN).toBeLessThanOrEqual(newest);
      expect(hostsN).toBeLessThanOrEqual(newest);
      expect(settingsDoc).toEqual({ version: 1, settings: settingsVersion(settingsN) });
      expect(hostsDoc).toEqual({ version: 1, hosts: hostsVersion(hostsN) });
      previous = { settings: settingsN, hosts: hostsN };

      // A whole engine, started on what the kill left, reads both without a warning.
      const logLines: string[] = [];
      const engine = new Engine({
        sshConfigPath: join(dir, 'ssh_config'),
        sshBinary: 'ssh',
        dataDir: join(dir, 'data'),
        knownHostsPath: join(dir, 'data/known_hosts'),
        authSock: undefined,
        secrets: testKeychain(),
        idleTimeoutMs: null,
        controlSocketDir: null,
        log: createLogger((line) => logLines.push(line)),
      });
      expect(await engine.getSettings()).toEqual({ settings: settingsVersion(settingsN), warning: null });
      const { catalog } = await engine.snapshot();
      expect(catalog.warnings).toEqual([]);
      expect(catalog.hosts.map((h) => [h.id, h.port])).toEqual([
        ['kept', 22],
        ['busy', 1000 + hostsN],
      ]);
      await engine.shutdown();
    }
    expect(Math.min(previous.settings, previous.hosts)).toBeGreaterThan(20); // the kills did land among saves
    // Nothing was moved aside as corrupt; a kill mid-write leaves at most its temp file behind.
    const others = (await readdir(join(dir, 'data'))).filter((f) => f !== 'hosts.json' && f !== 'settings.json');
    for (const f of others) expect(f).toMatch(/^\.(hosts|settings)\.json\.\d+\.[0-9a-f-]{36}\.tmp$/);
  }, 60_000);
});

// What a user sees when something is wrong: each failure is a specific, readable error, the
// engine keeps serving, and other masters are undisturbed.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, keygen, startSshd, type Sshd } from '../fixtures/sshd';
import { type TestEngine, testEngine } from '../fixtures/engine';
import { failure } from '../fixtures/failure';


describe('connection faults', () => {
  let sshd: Sshd;
  let t: TestEngine;
  let wrongKey: string;
  let otherHostKeyFile: string;

  beforeAll(async () => {
    sshd = await startSshd();
    wrongKey = join(sshd.dir, 'id_wrong');
    await keygen(wrongKey);
    // A known_hosts that pins a different ed25519 key for the same [127.0.0.1]:port.
    const otherPub = await keygen(join(sshd.dir, 'other_host_key'));
    otherHostKeyFile = join(sshd.dir, 'known_hosts_changed');
    await writeFile(otherHostKeyFile, `[127.0.0.1]:${sshd.port} ${otherPub.split(' ').slice(0, 2).join(' ')}\n`);
    const closedPort = await freePort();
    const config = [
      sshd.clientConfig('good'),
      sshd.clientConfig('wrongkey').replace(sshd.clientKey, wrongKey),
      sshd.clientConfig('changedkey').replace(sshd.knownHosts, otherHostKeyFile),
      sshd.clientConfig('unknownkey').replace(sshd.knownHosts, '/dev/null'),
      sshd.clientConfig('refused').replace(`Port ${sshd.port}`, `Port ${closedPort}`),
      sshd.clientConfig('nxdomain').replace('HostName 127.0.0.1', 'HostName no-such-host.invalid'),
    ].join('\n');
    t = await testEngine(config);
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('says which methods the server refused when authentication fails', async () => {
    const err = await failure(t.engine.connect('wrongkey'));
    expect(err.code).toBe('auth');
    expect(err.message).toMatch(new RegExp(`Authentication failed for ${sshd.user}@127\\.0\\.0\\.1.*publickey`));
  });

  it('refuses a changed host key loudly, with both fingerprints', async () => {
    const err = await failure(t.engine.connect('changedkey'));
    expect(err.code).toBe('host-key-changed');
    expect(err.message).toMatch(/CHANGED/);
    const fingerprints = err.message.match(/SHA256:[A-Za-z0-9+/]{43}/g) ?? [];
    expect(new Set(fingerprints).size).toBe(2);
    expect(err.message).toContain(otherHostKeyFile);
    expect(await sshd.acceptedLogins()).toBe(0); // never authenticated
  });

  it('asks about an unknown host key, showing its fingerprint, and refuses when declined', async () => {
    const attempt = failure(t.engine.connect('unknownkey'));
    const prompt = await t.nextPrompt('host-key');
    expect(prompt.message).toMatch(/ssh-ed25519 key fingerprint is SHA256:[A-Za-z0-9+/]{43}/);
    t.engine.cancelPrompt(prompt.id);
    const err = await attempt;
    expect(err.code).toBe('host-key-unknown');
    expect(err.message).toMatch(/did not accept/);
  });

  it('reports a refused connection', async () => {
    const err = await failure(t.engine.connect('refused'));
    expect(err.code).toBe('refused');
    expect(err.message).toMatch(/Connection refused by 127\.0\.0\.1 port \d+/);
  });

  it('reports a host name that does not resolve', async () => {
    const err = await failure(t.engine.connect('nxdomain'));
    expect(err.code).toBe('dns');
    expect(err.message).toContain('no-such-host.invalid');
  });

  it('reports a host that is not in the config', async () => {
    const err = await failure(t.engine.connect('nope'));
    expect(err.code).toBe('unknown-host');
  });

  it('shows a failed master as failed with its reason, and keeps others working', async () => {
    await failure(t.engine.connect('refused'));
    const s = await t.engine.openSession('good', { kind: 'shell', cols: 80, rows: 24 });
    t.engine.writeSession(s.id, 'echo ok-$((1+1))\n');
    await t.waitForOutput(s.id, /ok-2/);
    const { catalog, masters } = await t.engine.snapshot();
    const masterOf = (alias: string) => masters.find((m) => m.id === catalog.hosts.find((h) => h.id === alias)?.masterId);
    expect(masterOf('refused')).toMatchObject({ state: 'failed', error: { code: 'refused' } });
    expect(masterOf('good')).toMatchObject({ state: 'ready' });
    expect(t.logLines.some((l) => l.includes('"master failed"') && l.includes('"code":"refused"'))).toBe(true);
  });

  it('lets another alias of the same destination connect after a failed attempt', async () => {
    // wrongkey and good name the same user@host:port: one master, as with OpenSSH's %C.
    const { catalog } = await t.engine.snapshot();
    const id = (alias: string) => catalog.hosts.find((h) => h.id === alias)?.masterId;
    expect(id('wrongkey')).toBe(id('good'));
    await t.engine.disconnect('good');
    await expect.poll(async () => (await t.engine.snapshot()).masters.find((m) => m.id === id('good'))?.state).toBe('closed');
    await failure(t.engine.connect('wrongkey'));
    expect((await t.engine.connect('good')).state).toBe('ready');
  });

  it('marks sessions disconnected when the server dies, and reconnects when it is back', async () => {
    const other = await startSshd();
    const t2 = await testEngine(other.clientConfig('victim'));
    try {
      const s = await t2.engine.openSession('victim', { kind: 'shell', cols: 80, rows: 24 });
      t2.engine.writeSession(s.id, 'echo before-$((1+1))\n');
      await t2.waitForOutput(s.id, /before-2/);
      await other.kill(); // the listener and every connection process
      const master = async () => (await t2.engine.snapshot()).masters[0];
      await expect.poll(async () => (await master())?.state, { timeout: 10_000 }).toBe('reconnecting');
      expect((await master())?.error?.message).toMatch(/victim|127\.0\.0\.1/);
      const session = (await t2.engine.snapshot()).sessions.find((x) => x.id === s.id);
      expect(session?.state).toBe('disconnected');
      expect(t2.engine.attachSession(s.id, 'test').data).toContain('before-2'); // scrollback kept

      await other.start();
      await expect.poll(async () => (await master())?.state, { timeout: 15_000 }).toBe('ready');
      const again = await t2.engine.openSession('victim', { kind: 'shell', cols: 80, rows: 24 });
      t2.engine.writeSession(again.id, 'echo after-$((2+2))\n');
      await t2.waitForOutput(again.id, /after-4/);
      expect(await other.acceptedLogins()).toBe(2);
    } finally {
      await t2.close();
      await other.stop();
    }
  });
});

describe('ssh config problems', () => {
  it('reports a malformed config with the line OpenSSH complains about', async () => {
    const t = await testEngine('Host broken\n  HostName 127.0.0.1\n  NoSuchOption yes\n');
    try {
      const { catalog } = await t.engine.snapshot();
      expect(catalog.warnings.join('\n')).toMatch(/line 3: Bad configuration option: nosuchoption/i);
      expect(catalog.hosts[0]?.error).toMatch(/Bad configuration option/);
      const err = await failure(t.engine.connect('broken'));
      expect(err.code).toBe('config');
    } finally {
      await t.close();
    }
  });

  it('reports an unreadable config instead of an empty list', async () => {
    // A directory where the file should be: unreadable even for root, who can read any file.
    const dir = await mkdtemp(join(tmpdir(), 'hitch-cfgdir-'));
    const t = await testEngine('', { configPath: dir });
    try {
      const { catalog } = await t.engine.snapshot();
      expect(catalog.hosts).toEqual([]);
      expect(catalog.warnings[0]).toMatch(/Cannot read ssh config .*hitch-cfgdir-\w+: it is a directory/);
    } finally {
      await t.close();
      await rm(dir, { recursive: true });
    }
  });

  it('falls back to reading the config itself when ssh is missing, and says so', async () => {
    const t = await testEngine('Host web\n  HostName web.example\n  Port 2222\n  User deploy\nHost *\n  User nobody\n', {
      sshBinary: '/nonexistent/ssh',
    });
    try {
      const { catalog } = await t.engine.snapshot();
      expect(catalog.warnings.join('\n')).toMatch(/OpenSSH client \(\/nonexistent\/ssh\) was not found/);
      expect(catalog.hosts).toEqual([
        expect.objectContaining({ id: 'web', hostname: 'web.example', port: 2222, user: 'deploy', error: null }),
      ]);
    } finally {
      await t.close();
    }
  });
});

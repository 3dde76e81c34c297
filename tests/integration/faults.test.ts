// What a user sees when something is wrong: each failure is a specific, readable error, the
// engine keeps serving, and other masters are undisturbed.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HitchError } from '../../main/engine/errors';
import { freePort, keygen, startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';

async function failure(p: Promise<unknown>): Promise<HitchError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HitchError);
  return err as HitchError;
}

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

  it('refuses an unknown host key and shows its fingerprint', async () => {
    const err = await failure(t.engine.connect('unknownkey'));
    expect(err.code).toBe('host-key-unknown');
    expect(err.message).toMatch(/ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}/);
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
    await failure(t.engine.connect('wrongkey'));
    const s = await t.engine.openSession('good', 80, 24);
    t.engine.writeSession(s.id, 'echo ok-$((1+1))\n');
    await t.waitForOutput(s.id, /ok-2/);
    const snap = await t.engine.snapshot();
    expect(snap.masters.find((m) => m.hostId === 'wrongkey')).toMatchObject({ state: 'failed', error: { code: 'auth' } });
    expect(snap.masters.find((m) => m.hostId === 'good')).toMatchObject({ state: 'ready' });
    expect(t.logLines.some((l) => l.includes('"master failed"') && l.includes('"code":"auth"'))).toBe(true);
  });

  it('marks the master closed and its sessions ended when sshd goes away', async () => {
    const other = await startSshd();
    const t2 = await testEngine(other.clientConfig('victim'));
    try {
      const s = await t2.engine.openSession('victim', 80, 24);
      await other.stop();
      // Killing the listener does not end the per-connection sshd: end our session's shell.
      t2.engine.writeSession(s.id, 'kill -9 $PPID\n');
      await expect
        .poll(async () => (await t2.engine.snapshot()).masters[0]?.state, { timeout: 10_000 })
        .toMatch(/closed|failed/);
      await expect.poll(async () => (await t2.engine.snapshot()).sessions[0]?.state).toBe('closed');
    } finally {
      await t2.close();
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

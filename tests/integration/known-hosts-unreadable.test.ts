// A known_hosts file Hitch cannot read might hold the key that shows a host's key has CHANGED.
// Reading it as empty would make that host look merely new, and `accept-new` or "accept once"
// would then trust an impostor: so the connection stops, naming the file and why. A missing
// file is different: it holds no keys, and the host is simply unknown.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { type TestEngine, testEngine } from '../fixtures/engine';
import { failure } from '../fixtures/failure';

describe('an unreadable known_hosts file', () => {
  let sshd: Sshd;
  let unreadable: string;
  let t: TestEngine | null = null;

  beforeAll(async () => {
    sshd = await startSshd();
    // A directory where the host's known_hosts should be: unreadable even for root, whom
    // chmod 000 does not stop.
    unreadable = join(sshd.dir, 'known_hosts_dir');
    await mkdir(unreadable);
  });
  afterEach(async () => {
    await t?.close();
    t = null;
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  function config(alias: string, knownHosts: string, extra: string[] = []): string {
    return sshd.clientConfig(alias, extra).replace(`UserKnownHostsFile ${sshd.knownHosts}`, `UserKnownHostsFile ${knownHosts}`);
  }

  it('stops the connection under accept-new instead of trusting the key as new', async () => {
    t = await testEngine(config('acceptnew', unreadable, ['StrictHostKeyChecking accept-new']));
    const logins = await sshd.acceptedLogins();
    const err = await failure(t.engine.connect('acceptnew'));
    expect(err.code).toBe('config');
    expect(err.message).toBe(
      `Cannot read known_hosts file ${unreadable}: it is a directory — refusing to connect, since a changed host key could not be detected.`,
    );
    expect(await sshd.acceptedLogins()).toBe(logins); // never authenticated
    expect(existsSync(join(t.dir, 'known_hosts'))).toBe(false); // and nothing recorded as trusted
  });

  it('stops the connection before asking the person to accept the key', async () => {
    t = await testEngine(config('asks', unreadable));
    const engine = t.engine;
    const logins = await sshd.acceptedLogins();
    const attempt = engine.connect('asks').then(
      () => null,
      (e: unknown) => e,
    );
    const prompted = t.nextPrompt('host-key', 3000).then(
      (p) => {
        engine.cancelPrompt(p.id);
        return true;
      },
      () => false,
    );
    const [err, wasPrompted] = await Promise.all([attempt, prompted]);
    expect(wasPrompted).toBe(false);
    expect(err).toMatchObject({ code: 'config', message: expect.stringContaining(`Cannot read known_hosts file ${unreadable}: it is a directory`) });
    expect(await sshd.acceptedLogins()).toBe(logins);
  });

  it('still treats a missing known_hosts file as holding no keys', async () => {
    t = await testEngine(config('missing', join(sshd.dir, 'no-such-known_hosts'), ['StrictHostKeyChecking accept-new']));
    const logins = await sshd.acceptedLogins();
    await t.engine.connect('missing');
    expect(await sshd.acceptedLogins()).toBe(logins + 1);
    expect(existsSync(join(t.dir, 'known_hosts'))).toBe(true); // accepted as new and recorded
  });
});

// Hitch remembers passwords and key passphrases in the OS keychain when the user asks it to,
// and says plainly when it cannot. These run against a real Secret Service (gnome-keyring on a
// private D-Bus session, from scripts/with-keyring.sh), never a mock. The failure cases run in
// child processes, because the D-Bus address is fixed when a process first connects.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeychainError, osKeychain, secretAccount } from '../../main/engine/masters/keychain';
import { transpileSources } from '../fixtures/transpiled';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');

// These tests write to the keychain, so they use only the throwaway one with-keyring.sh makes
// (and names in HITCH_TEST_KEYRING), never a developer's own.
const noKeyring = process.env.HITCH_TEST_KEYRING
  ? null
  : 'skipped: no throwaway Secret Service; run through scripts/with-keyring.sh, as npm test does';
const notLinux = process.platform === 'linux' ? null : 'skipped: the Secret Service is the Linux keychain';
const noDbusTools = hasCommands('dbus-run-session', 'dbus-send', 'gnome-keyring-daemon')
  ? null
  : 'skipped: needs dbus and gnome-keyring (bash scripts/setup.sh --test installs them)';
const withReason = (name: string, reason: string | null): string => (reason ? `${name} (${reason})` : name);

function hasCommands(...names: string[]): boolean {
  try {
    execFileSync('sh', ['-c', names.map((n) => `command -v ${n}`).join(' && ')], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

it('files secrets under the account names the app uses', () => {
  expect(secretAccount('password', 'alice@web1:22')).toBe('password:alice@web1:22');
  expect(secretAccount('passphrase', '/home/a/.ssh/id_ed25519')).toBe('passphrase:/home/a/.ssh/id_ed25519');
});

describe.skipIf(noKeyring !== null)(withReason('the OS keychain (real Secret Service)', noKeyring), () => {
  // A service name of its own per run, so nothing here meets another run's entries.
  const service = `HitchTest-${process.pid}-${Date.now()}`;
  const keychain = osKeychain(service);
  const used = new Set<string>();
  const account = (kind: 'password' | 'passphrase', subject: string): string => {
    const name = secretAccount(kind, subject);
    used.add(name);
    return name;
  };

  afterAll(async () => {
    for (const name of used) await keychain.delete(name).catch(() => false);
  });

  it('reports that it can store secrets', async () => {
    await expect(keychain.status()).resolves.toEqual({ ok: true });
  });

  it('gives back exactly the password it was given, in any script', async () => {
    const secrets = [
      'pässwörd',
      '密码🔑 пароль كلمة',
      'e\u0301\u0327 combining marks, and 👩‍👩‍👧 a joined emoji',
      '  spaces at both ends  ',
      `quotes " ' \\ and a\nnewline`,
    ];
    for (const [i, secret] of secrets.entries()) {
      const name = account('password', `user${i}@unicode:22`);
      await keychain.set(name, secret);
      expect(await keychain.get(name)).toBe(secret);
    }
  });

  it('is really in the Secret Service, where other clients see it', async () => {
    const name = account('password', 'carol@visible:22');
    await keychain.set(name, 'seen by secret-tool ✓');
    // keyutils would also round-trip; only the Secret Service answers secret-tool.
    const { stdout } = await run('secret-tool', ['lookup', 'service', service, 'username', name]);
    expect(stdout).toBe('seen by secret-tool ✓');
  });

  it('replaces a remembered password when the user changes it', async () => {
    const name = account('password', 'alice@changed:22');
    await keychain.set(name, 'old password');
    await keychain.set(name, 'new password ✨');
    expect(await keychain.get(name)).toBe('new password ✨');
    // One entry, not two: a single delete leaves nothing behind.
    expect(await keychain.delete(name)).toBe(true);
    expect(await keychain.get(name)).toBeNull();
  });

  it('forgets a password, and says when there was nothing to forget', async () => {
    const name = account('passphrase', '/home/a/.ssh/id_forget');
    await keychain.set(name, 'to be forgotten');
    expect(await keychain.delete(name)).toBe(true);
    expect(await keychain.get(name)).toBeNull();
    expect(await keychain.delete(name)).toBe(false);
    expect(await keychain.delete(account('password', 'never@saved:22'))).toBe(false);
    expect(await keychain.get(account('password', 'never@saved:22'))).toBeNull();
  });

  it("keeps each host's password and each key's passphrase apart", async () => {
    const names = [
      account('password', 'alice@web1:22'),
      account('password', 'alice@web1:2222'),
      account('password', 'bob@web1:22'),
      account('password', 'alice@web2:22'),
      account('passphrase', '/home/a/.ssh/id_ed25519'),
    ];
    for (const name of names) await keychain.set(name, `secret of ${name}`);
    for (const name of names) expect(await keychain.get(name)).toBe(`secret of ${name}`);

    // Another service name is another keychain namespace, even for the same account.
    const other = osKeychain(`${service}-other`);
    expect(await other.get(names[0]!)).toBeNull();
    await other.set(names[0]!, 'the other one');
    expect(await keychain.get(names[0]!)).toBe(`secret of ${names[0]}`);
    expect(await other.delete(names[0]!)).toBe(true);
    expect(await keychain.get(names[0]!)).toBe(`secret of ${names[0]}`);
  });
});

// A child process loads the real module (transpiled to CommonJS) against a given D-Bus setup
// and reports what the app would see, as JSON.
describe.skipIf(notLinux !== null)(withReason('without a usable keychain', notLinux), () => {
  const secret = 'child-sëcret-🔑-do-not-echo';
  let dir: string;
  let moduleFile: string;
  let childFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitch-keychain-'));
    // keychain.ts and what it imports (the engine's HitchError), as CommonJS.
    await transpileSources(dir);
    moduleFile = join(dir, 'main/engine/masters/keychain.js');
    childFile = join(dir, 'child.cjs');
    writeFileSync(
      childFile,
      `
      const { osKeychain, secretAccount, KeychainError } = require(process.argv[2]);
      const keychain = osKeychain('HitchChildTest');
      const account = secretAccount('password', 'alice@web1:22');
      const secret = ${JSON.stringify(secret)};
      const outcome = (p) => p.then(
        (value) => ({ value }),
        (e) => ({ error: { name: e.name, isKeychainError: e instanceof KeychainError, message: e.message } }),
      );
      (async () => {
        if (process.argv[3] === 'prepare') return keychain.set(account, secret);
        const status = await keychain.status();
        const get = await outcome(keychain.get(account));
        const set = await outcome(keychain.set(account, secret));
        const del = await outcome(keychain.delete(account));
        process.stdout.write(JSON.stringify({ status, get, set, delete: del }));
      })();
      `,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // NODE_PATH lets the transpiled module in a temp dir find @napi-rs/keyring.
  const childEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    ...process.env,
    NODE_PATH: join(root, 'node_modules'),
    ...extra,
  });

  type Outcome = { value?: unknown; error?: { name: string; isKeychainError: boolean; message: string } };
  type Report = { status: { ok: boolean; reason?: string }; get: Outcome; set: Outcome; delete: Outcome };

  async function report(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Report> {
    // The timeout matters: a bus that never answers blocks the child (see keychain.ts).
    const { stdout, stderr } = await run(file, args, { env, cwd: root, timeout: 20_000 });
    expect(stdout + stderr).not.toContain(secret);
    return JSON.parse(stdout) as Report;
  }

  const asksEachTime = ': Hitch will ask for passwords each time instead of remembering them.';
  const reading = ', so Hitch cannot read the saved password for alice@web1:22.';
  const saving = ', so Hitch cannot save the password for alice@web1:22.';
  const removing = ', so Hitch cannot remove the saved password for alice@web1:22.';
  const withDbusTools = it.skipIf(noDbusTools !== null);

  it('with no D-Bus session bus, says so and rejects every call with a KeychainError', async () => {
    const noBus = { DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` };
    const r = await report(process.execPath, [childFile, moduleFile], childEnv(noBus));
    const cause = 'No OS keychain is available (no D-Bus session bus)';
    expect(r.status).toEqual({ ok: false, reason: cause + asksEachTime });
    expect(r.get.error).toEqual({ name: 'KeychainError', isKeychainError: true, message: cause + reading });
    expect(r.set.error?.message).toBe(cause + saving);
    expect(r.delete.error?.message).toBe(cause + removing);
  });

  withDbusTools(withReason('with a session bus but no Secret Service on it, says so', noDbusTools), async () => {
    // A bus that knows no services to start, so nothing answers for org.freedesktop.secrets.
    const config = join(dir, 'bare-session.conf');
    writeFileSync(
      config,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
        "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
      <busconfig>
        <type>session</type>
        <listen>unix:dir=${dir}</listen>
        <auth>EXTERNAL</auth>
        <policy context="default">
          <allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/>
        </policy>
      </busconfig>`,
    );
    const r = await report(
      'dbus-run-session',
      [`--config-file=${config}`, '--', process.execPath, childFile, moduleFile],
      childEnv(),
    );
    const cause = 'No OS keychain is available (no Secret Service on the D-Bus session bus)';
    expect(r.status).toEqual({ ok: false, reason: cause + asksEachTime });
    expect(r.get.error).toEqual({ name: 'KeychainError', isKeychainError: true, message: cause + reading });
  });

  withDbusTools(withReason('with a locked keyring that nobody unlocks, says it is locked', noDbusTools), async () => {
    // Its own throwaway keyring: save a password, lock the keyring over D-Bus, then look. There
    // is no display, so the unlock prompt is dismissed at once.
    const lock = [
      'dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets',
      'org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login',
    ].join(' ');
    const node = `"${process.execPath}" "${childFile}" "${moduleFile}"`;
    const r = await report(
      'bash',
      ['scripts/with-keyring.sh', 'sh', '-c', `${node} prepare && ${lock} >/dev/null && ${node}`],
      childEnv(),
    );
    const cause = 'The OS keychain is locked';
    expect(r.status).toEqual({ ok: false, reason: cause + asksEachTime });
    expect(r.get.error).toEqual({ name: 'KeychainError', isKeychainError: true, message: cause + reading });
    expect(r.set.error?.message).toBe(cause + saving);
    expect(r.delete.error?.message).toBe(cause + removing);
  });
});

it('a KeychainError is an Error a caller can tell apart', () => {
  const err = new KeychainError('The OS keychain is locked, so Hitch cannot save the password for a@b:22.');
  expect(err).toBeInstanceOf(Error);
  expect(err.name).toBe('KeychainError');
});

// Hosts a person adds in the app live in one JSON file beside ~/.ssh/config. These tests
// read as what the person does: add, edit, rename and remove hosts, restart the app, and
// survive files that are corrupt, from a newer Hitch, or left half-written by a crash.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HitchError } from '../../main/engine/errors';
import { HostStore, savedHostSshArgs, type SavedHost } from '../../main/engine/config/host-store';
import { silentLogger } from '../../main/engine/log';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'hitch-host-store-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

let caseCount = 0;
/** A path for the hosts file in a directory that does not exist yet. */
function freshFile(): string {
  return join(tmp, `case-${++caseCount}`, 'config', 'hosts.json');
}

async function openStore(file: string): Promise<{ store: HostStore; warning: string | null }> {
  const store = new HostStore(file, silentLogger);
  const { warning } = await store.load();
  return { store, warning };
}

/** What a rejected promise threw, for asserting on its code and message. */
async function failure(p: Promise<unknown>): Promise<HitchError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HitchError);
  return err as HitchError;
}

const web = { id: 'web', hostname: 'web.example', user: 'deploy', port: 2222 };

describe('saving hosts', () => {
  it('keeps added, edited, renamed and removed hosts across a restart', async () => {
    const file = freshFile();
    const { store, warning } = await openStore(file);
    expect(warning).toBeNull();
    expect(store.list()).toEqual([]);

    expect(await store.add(web)).toEqual({ ...web, rememberSecrets: false });
    await store.add({ id: 'db', hostname: '10.0.0.5', proxyJump: 'web', rememberSecrets: true });
    await store.update('web', { port: 22, identityFile: '~/.ssh/deploy' });
    await store.update('db', { id: 'db-primary', proxyJump: null }); // rename, and clear a field

    const reopened = (await openStore(file)).store;
    expect(reopened.list()).toEqual([
      { id: 'web', hostname: 'web.example', user: 'deploy', port: 22, identityFile: '~/.ssh/deploy', rememberSecrets: false },
      { id: 'db-primary', hostname: '10.0.0.5', rememberSecrets: true },
    ]);
    expect(reopened.get('db')).toBeUndefined();
    expect(reopened.get('db-primary')?.hostname).toBe('10.0.0.5');

    await reopened.remove('web');
    expect((await openStore(file)).store.list().map((h) => h.id)).toEqual(['db-primary']);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, hosts: [{ id: 'db-primary' }] });
  });

  it('hands out copies, so a caller cannot change the store behind its back', async () => {
    const { store } = await openStore(freshFile());
    const added = await store.add(web);
    added.hostname = 'evil.example';
    store.list()[0]!.hostname = 'evil.example';
    store.get('web')!.hostname = 'evil.example';
    expect(store.get('web')?.hostname).toBe('web.example');
  });

  it('creates the file readable only by the user, in a directory only the user can enter', async () => {
    const file = freshFile();
    const { store } = await openStore(file);
    await store.add(web);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(file, '..')).mode & 0o777).toBe(0o700);
    expect(statSync(join(file, '..', '..')).mode & 0o777).toBe(0o700);
  });

  it('accepts IPv4, IPv6, trailing-dot names, name@domain users and multi-hop jumps', async () => {
    const { store } = await openStore(freshFile());
    await store.add({ id: 'v4', hostname: '192.0.2.1' });
    await store.add({ id: 'v6', hostname: '2001:db8::1' });
    await store.add({ id: 'fqdn', hostname: 'web.example.', user: 'alice@corp.example' });
    await store.add({ id: 'hops', hostname: 'h', proxyJump: 'alice@jump.example:2222,[2001:db8::2]:22,bastion,bob@10.0.0.1' });
    expect(store.list()).toHaveLength(4);
  });

  it('edits and removals of a host that does not exist say so', async () => {
    const { store } = await openStore(freshFile());
    expect((await failure(store.update('nope', { port: 22 }))).code).toBe('unknown-host');
    expect((await failure(store.remove('nope'))).code).toBe('unknown-host');
  });

  it('refuses changes before the file has been read, so an earlier run’s hosts are never replaced', async () => {
    const file = freshFile();
    await (await openStore(file)).store.add(web);
    const unloaded = new HostStore(file, silentLogger);
    await failure(unloaded.add({ id: 'other', hostname: 'other.example' }));
    expect((await openStore(file)).store.list().map((h) => h.id)).toEqual(['web']);
  });

  it('keeps the previous hosts when the file cannot be written', async () => {
    const file = freshFile();
    const { store } = await openStore(file);
    await store.add(web);
    const dir = join(file, '..');
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'a file where the directory should be');
    const err = await failure(store.add({ id: 'db', hostname: 'db.example' }));
    expect(err.code).toBe('internal');
    expect(err.message).toContain('Could not save hosts');
    expect(store.list().map((h) => h.id)).toEqual(['web']);
  });

  it('refuses changes for this run when the file exists but cannot be read', async () => {
    const blocker = join(tmp, `case-${++caseCount}-blocker`);
    writeFileSync(blocker, 'a file where a directory should be');
    const { store, warning } = await openStore(join(blocker, 'hosts.json'));
    expect(warning).toMatch(/Cannot read saved hosts file .*read-only for this run/);
    expect((await failure(store.add(web))).message).toBe(warning);
    expect(readFileSync(blocker, 'utf8')).toBe('a file where a directory should be');
  });
});

describe('rejecting invalid hosts', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a hostname with a space', { hostname: 'web example' }, /hostname must not contain spaces/],
    ['a hostname that looks like an option', { hostname: '-oProxyCommand=sh' }, /hostname must not start with '-'/],
    ['a hostname with a newline', { hostname: 'web\nProxyCommand sh' }, /hostname must not contain/],
    ['an impossible IPv4 address', { hostname: '999.1.1.1' }, /hostname is not a valid IPv4/],
    ['a hostname with an ssh token', { hostname: 'web%h' }, /hostname must be a DNS name/],
    ['a missing hostname', { hostname: undefined }, /hostname is required/],
    ['port 0', { port: 0 }, /port must be a whole number from 1 to 65535/],
    ['port 70000', { port: 70000 }, /port must be a whole number from 1 to 65535/],
    ['a fractional port', { port: 22.5 }, /port must be a whole number/],
    ['a port given as text', { port: '22' }, /port must be a whole number/],
    ['an id that looks like an option', { id: '-G' }, /id must not start with '-'/],
    ['an id with a slash', { id: 'a/b' }, /id may only contain/],
    ['an id longer than 64 characters', { id: 'a'.repeat(65) }, /id must be at most 64/],
    ['a user with a space', { user: 'de ploy' }, /user must not contain spaces/],
    ['a user that looks like an option', { user: '-l' }, /user must not start with '-'/],
    ['a relative identity file', { identityFile: '.ssh/key' }, /identityFile must be an absolute path/],
    ['an identity file with a newline', { identityFile: '~/.ssh/k\nProxyCommand sh' }, /identityFile must not contain line breaks/],
    ['an identity file with a token', { identityFile: '~/.ssh/%h' }, /identityFile must not contain '%'/],
    ['a proxy jump with spaces', { proxyJump: 'a, b' }, /proxyJump must not contain spaces/],
    ['a proxy jump with an empty hop', { proxyJump: 'a,,b' }, /proxyJump has an empty entry/],
    ['a proxy jump hop that looks like an option', { proxyJump: '-oProxyCommand=sh' }, /proxyJump entry .* must not start with '-'/],
    ['a proxy jump hop with port 0', { proxyJump: 'jump:0' }, /proxyJump entry "jump:0": port/],
    ['a proxy jump with a bare IPv6 address', { proxyJump: '::1' }, /proxyJump entry "::1" must look like/],
    ['rememberSecrets that is not a boolean', { rememberSecrets: 'yes' }, /rememberSecrets must be true or false/],
    ['an unknown extra field', { color: 'red' }, /unknown field "color"/],
  ];

  it.each(cases)('rejects %s, naming the field', async (_what, change, message) => {
    const file = freshFile();
    const { store } = await openStore(file);
    const err = await failure(store.add({ ...web, ...change }));
    expect(err.code).toBe('bad-request');
    expect(err.message).toMatch(message);
    expect(store.list()).toEqual([]);
    expect(existsSync(file)).toBe(false);
  });

  it('rejects something that is not a host at all', async () => {
    const { store } = await openStore(freshFile());
    expect((await failure(store.add('web'))).message).toMatch(/the host must be an object/);
    expect((await failure(store.add(null))).code).toBe('bad-request');
  });

  it('rejects an invalid edit and keeps the host as it was', async () => {
    const file = freshFile();
    const { store } = await openStore(file);
    await store.add(web);
    expect((await failure(store.update('web', { port: 0 }))).message).toMatch(/port/);
    expect((await failure(store.update('web', { hostname: null }))).message).toMatch(/hostname is required/);
    expect((await failure(store.update('web', 'port=0'))).code).toBe('bad-request');
    expect((await openStore(file)).store.get('web')).toEqual({ ...web, rememberSecrets: false });
  });

  it('rejects a second host with the same id, ignoring case, and a rename onto another host', async () => {
    const { store } = await openStore(freshFile());
    await store.add(web);
    await store.add({ id: 'db', hostname: 'db.example' });
    for (const attempt of [store.add({ id: 'web', hostname: 'x.example' }), store.add({ id: 'WEB', hostname: 'x.example' })]) {
      const err = await failure(attempt);
      expect(err.code).toBe('bad-request');
      expect(err.message).toBe('A saved host named "web" already exists; choose another id.');
    }
    expect((await failure(store.update('db', { id: 'web' }))).message).toContain('"web" already exists');
    await store.update('web', { id: 'Web' }); // changing only its own case is fine
    expect(store.list().map((h) => h.id)).toEqual(['Web', 'db']);
  });
});

describe('files Hitch cannot use', () => {
  function backupsOf(file: string): string[] {
    const dir = join(file, '..');
    return readdirSync(dir)
      .filter((name) => name.startsWith('hosts.json.corrupt-'))
      .map((name) => join(dir, name));
  }

  async function expectMovedAside(file: string, original: string): Promise<void> {
    const { store, warning } = await openStore(file);
    const backups = backupsOf(file);
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatch(/hosts\.json\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z$/);
    expect(readFileSync(backups[0]!, 'utf8')).toBe(original);
    expect(warning).toContain(backups[0]!);
    expect(existsSync(file)).toBe(false);
    expect(store.list()).toEqual([]);

    await store.add(web); // the store is usable again at once
    expect((await openStore(file)).store.list().map((h) => h.id)).toEqual(['web']);
    expect(readFileSync(backups[0]!, 'utf8')).toBe(original);
  }

  function writeHosts(text: string): string {
    const file = freshFile();
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text);
    return file;
  }

  it('moves a file that is not JSON aside, keeping its bytes, and starts empty', async () => {
    const original = '{"version": 1, "hosts": [ {"id": "web", "hostn';
    await expectMovedAside(writeHosts(original), original);
  });

  it('moves a file with the wrong shape aside', async () => {
    const original = JSON.stringify({ version: 1, hosts: [{ id: 'web', hostname: '-oProxyCommand=sh' }] });
    await expectMovedAside(writeHosts(original), original);
  });

  it('moves a file without a version aside', async () => {
    const original = JSON.stringify([{ id: 'web', hostname: 'web.example' }]);
    await expectMovedAside(writeHosts(original), original);
  });

  it('moves a file listing the same id twice aside', async () => {
    const host = { id: 'web', hostname: 'web.example', rememberSecrets: false };
    const original = JSON.stringify({ version: 1, hosts: [host, { ...host, id: 'WEB' }] });
    await expectMovedAside(writeHosts(original), original);
  });

  it('never overwrites an earlier backup', async () => {
    const file = writeHosts('not json, first time');
    await openStore(file);
    writeFileSync(file, 'not json, second time');
    await openStore(file);
    const contents = backupsOf(file).map((b) => readFileSync(b, 'utf8'));
    expect(contents.sort()).toEqual(['not json, first time', 'not json, second time']);
  });

  it('leaves a file from a newer Hitch untouched and refuses changes for this run', async () => {
    const original = JSON.stringify({ version: 2, hosts: [{ id: 'web', hostname: 'web.example', colour: 'red' }] });
    const file = writeHosts(original);
    const { store, warning } = await openStore(file);
    expect(warning).toMatch(/written by a newer Hitch/);
    expect(warning).toMatch(/read-only for this run/);
    expect(store.list()).toEqual([]);

    const err = await failure(store.add(web));
    expect(err.message).toBe(warning);
    expect((await failure(store.remove('web'))).message).toBe(warning);
    expect(readFileSync(file, 'utf8')).toBe(original);
    expect(backupsOf(file)).toEqual([]);
  });

  it('loads despite a temp file left behind by a crash mid-write', async () => {
    const file = freshFile();
    await (await openStore(file)).store.add(web);
    writeFileSync(join(file, '..', `.hosts.json.4242.${'0'.repeat(8)}.tmp`), '{"version": 1, "hos');

    const { store, warning } = await openStore(file);
    expect(warning).toBeNull();
    expect(store.list().map((h) => h.id)).toEqual(['web']);
    await store.add({ id: 'db', hostname: 'db.example' });
    expect((await openStore(file)).store.list().map((h) => h.id)).toEqual(['web', 'db']);
  });
});

describe('many changes at once', () => {
  it('persists all of 20 hosts added concurrently', async () => {
    const file = freshFile();
    const { store } = await openStore(file);
    const ids = Array.from({ length: 20 }, (_, i) => `host-${i}`);
    await Promise.all(ids.map((id) => store.add({ id, hostname: `${id}.example` })));
    expect(store.list().map((h) => h.id)).toEqual(ids);
    expect((await openStore(file)).store.list().map((h) => h.id)).toEqual(ids);
    // No temp files are left behind by successful writes.
    expect(readdirSync(join(file, '..'))).toEqual(['hosts.json']);
  });

  it('keeps going after one of several concurrent changes fails', async () => {
    const file = freshFile();
    const { store } = await openStore(file);
    const results = await Promise.allSettled([
      store.add({ id: 'a', hostname: 'a.example' }),
      store.add({ id: 'a', hostname: 'again.example' }),
      store.add({ id: 'b', hostname: 'b.example' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await openStore(file)).store.list().map((h) => h.hostname)).toEqual(['a.example', 'b.example']);
  });
});

describe('resolving a saved host with OpenSSH', () => {
  const full: SavedHost = {
    id: 'web',
    hostname: 'web.example',
    port: 2222,
    user: 'deploy',
    identityFile: '~/.ssh/k',
    proxyJump: 'jump',
    rememberSecrets: false,
  };

  it('turns only the fields that are set into -o options', () => {
    expect(savedHostSshArgs(full)).toEqual([
      '-o', 'HostName=web.example',
      '-o', 'Port=2222',
      '-o', 'User=deploy',
      '-o', 'IdentityFile=~/.ssh/k',
      '-o', 'ProxyJump=jump',
    ]);
    expect(savedHostSshArgs({ id: 'x', hostname: '192.0.2.1', rememberSecrets: true })).toEqual(['-o', 'HostName=192.0.2.1']);
  });

  it('refuses to build options from a host that was never validated', () => {
    const forged = { ...full, hostname: 'web ProxyCommand=sh' };
    expect(() => savedHostSshArgs(forged)).toThrow(HitchError);
  });

  const hasSsh = (() => {
    try {
      execFileSync('ssh', ['-V'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  /** What the real OpenSSH client resolves for a saved host, as `keyword → values`. */
  function sshG(host: SavedHost): Map<string, string[]> {
    const cfg = join(tmp, `empty-config-${++caseCount}`);
    writeFileSync(cfg, '');
    const out = execFileSync('ssh', ['-G', '-F', cfg, ...savedHostSshArgs(host), '--', host.id], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = new Map<string, string[]>();
    for (const line of out.split('\n')) {
      const sp = line.indexOf(' ');
      if (sp > 0) lines.set(line.slice(0, sp), [...(lines.get(line.slice(0, sp)) ?? []), line.slice(sp + 1)]);
    }
    return lines;
  }

  it.skipIf(!hasSsh)('gives ssh -G exactly the saved hostname, port, user, key and jump', () => {
    const g = sshG(full);
    expect(g.get('host')).toEqual(['web']);
    expect(g.get('hostname')).toEqual(['web.example']);
    expect(g.get('port')).toEqual(['2222']);
    expect(g.get('user')).toEqual(['deploy']);
    expect(g.get('identityfile')).toEqual(['~/.ssh/k']);
    expect(g.get('proxyjump')).toEqual(['jump']);
  });

  it.skipIf(!hasSsh)('passes a key path with spaces, quotes and backslashes through intact', () => {
    const identityFile = `/keys/my keys/it's a "key"\\x`;
    expect(sshG({ id: 'k', hostname: '2001:db8::1', identityFile, rememberSecrets: false }).get('identityfile')).toEqual([
      identityFile,
    ]);
  });

  it.skipIf(!hasSsh)('passes IPv6 hosts and multi-hop jumps through intact', () => {
    const proxyJump = 'alice@jump.example:2222,[2001:db8::2]:22,bastion';
    const g = sshG({ id: 'v6', hostname: '2001:db8::1', user: 'alice@corp.example', proxyJump, rememberSecrets: false });
    expect(g.get('hostname')).toEqual(['2001:db8::1']);
    expect(g.get('user')).toEqual(['alice@corp.example']);
    expect(g.get('proxyjump')).toEqual([proxyJump]);
  });
});

// Before Hitch logs in, it checks the server's host key against the user's known_hosts files
// the way OpenSSH does. Keys, fingerprints and hashed entries here come from the machine's
// real ssh-keygen, so Hitch is checked against OpenSSH rather than against itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HitchError } from '../../main/engine/errors';
import {
  addKnownHost,
  fingerprint,
  hostFieldMatches,
  keyTypeOf,
  lookupName,
  parseKnownHosts,
  readKnownHosts,
  verifyHostKey,
} from '../../main/engine/masters/known-hosts';

interface TestKey {
  /** The `ssh-keygen` key file (private), with `.pub` beside it. */
  path: string;
  type: string;
  blob: Buffer;
  /** `TYPE BASE64`, as known_hosts stores it after the host field. */
  entry: string;
}

let tmp: string;
let serverA: TestKey; // ed25519: the key the server presents in most tests
let serverB: TestKey; // another ed25519: the key a host had before it changed
let ecdsa: TestKey;
let rsa: TestKey;

function keygen(name: string, type: string, bits?: number): TestKey {
  const path = join(tmp, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', 'hitch-test', '-f', path]);
  const [keyType, b64] = readFileSync(`${path}.pub`, 'utf8').trim().split(/\s+/);
  return { path, type: keyType!, blob: Buffer.from(b64!, 'base64'), entry: `${keyType} ${b64}` };
}

/** What `ssh-keygen -lf KEY.pub -E sha256` prints as the fingerprint. */
function opensshFingerprint(key: TestKey): string {
  const out = execFileSync('ssh-keygen', ['-l', '-f', `${key.path}.pub`, '-E', 'sha256'], { encoding: 'utf8' });
  return out.trim().split(/\s+/)[1]!;
}

let fileCount = 0;
function knownHostsFile(text: string): string {
  const file = join(tmp, `known_hosts-${++fileCount}`);
  writeFileSync(file, text);
  return file;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'hitch-known-hosts-'));
  serverA = keygen('server_a', 'ed25519');
  serverB = keygen('server_b', 'ed25519');
  ecdsa = keygen('server_ecdsa', 'ecdsa', 256);
  rsa = keygen('server_rsa', 'rsa', 2048);
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------

describe('showing a host key fingerprint', () => {
  it('prints the same SHA256 fingerprint as ssh-keygen -l for every key type', () => {
    for (const key of [serverA, serverB, ecdsa, rsa]) {
      expect(fingerprint(key.blob)).toBe(opensshFingerprint(key));
    }
    expect(fingerprint(serverA.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(fingerprint(serverA.blob)).not.toBe(fingerprint(serverB.blob));
  });

  it('reads the key type from inside the key', () => {
    expect(keyTypeOf(serverA.blob)).toBe('ssh-ed25519');
    expect(keyTypeOf(ecdsa.blob)).toBe('ecdsa-sha2-nistp256');
    expect(keyTypeOf(rsa.blob)).toBe('ssh-rsa');
    expect(keyTypeOf(Buffer.alloc(2))).toBe('');
  });
});

describe('naming a host in known_hosts', () => {
  it('uses the bare host name on port 22 and [host]:port on any other port', () => {
    expect(lookupName('example.com', 22)).toBe('example.com');
    expect(lookupName('example.com', 2222)).toBe('[example.com]:2222');
    expect(lookupName('10.0.0.5', 22)).toBe('10.0.0.5');
    expect(lookupName('10.0.0.5', 80)).toBe('[10.0.0.5]:80');
  });

  it('lowercases the host name as ssh does before any lookup, leaving non-ASCII letters alone', () => {
    expect(lookupName('Web1.Example.COM', 22)).toBe('web1.example.com');
    expect(lookupName('Web1.Example.COM', 2222)).toBe('[web1.example.com]:2222');
    expect(lookupName('ÄBC.example', 22)).toBe('Äbc.example'); // tolower(3) in ssh changes ASCII only
  });
});

describe('reading a known_hosts file', () => {
  it('keeps each entry with its file, 1-based line, marker, host field, type and key', () => {
    const file = 'known_hosts';
    const text = [
      '# a comment',
      '',
      `example.com,10.0.0.5 ${serverA.entry} root@example`,
      `   [db.example.com]:2222 ${ecdsa.entry}`,
      `@revoked * ${serverB.entry}`,
      `@cert-authority *.example.com ${rsa.entry} ca`,
      '',
    ].join('\n');
    expect(parseKnownHosts(file, text)).toEqual([
      { file, line: 3, marker: null, hosts: 'example.com,10.0.0.5', keyType: 'ssh-ed25519', key: serverA.blob },
      { file, line: 4, marker: null, hosts: '[db.example.com]:2222', keyType: 'ecdsa-sha2-nistp256', key: ecdsa.blob },
      { file, line: 5, marker: 'revoked', hosts: '*', keyType: 'ssh-ed25519', key: serverB.blob },
      { file, line: 6, marker: 'cert-authority', hosts: '*.example.com', keyType: 'ssh-rsa', key: rsa.blob },
    ]);
  });

  it('counts lines the same with CRLF endings', () => {
    const parsed = parseKnownHosts('f', `# top\r\nexample.com ${serverA.entry}\r\n`);
    expect(parsed.map((l) => [l.line, l.hosts])).toEqual([[2, 'example.com']]);
    expect(parsed[0]!.key.equals(serverA.blob)).toBe(true);
  });

  it('skips lines it cannot use: unknown markers, missing fields and keys that are not base64', () => {
    const text = [
      `@future-marker example.com ${serverA.entry}`,
      'example.com ssh-ed25519',
      'example.com',
      '@revoked',
      'example.com ssh-ed25519 not*base64!',
      `ok.example.com ${serverA.entry}`,
    ].join('\n');
    expect(parseKnownHosts('f', text).map((l) => [l.line, l.hosts])).toEqual([[6, 'ok.example.com']]);
  });

  it('reads several files in order and treats a missing one as empty', async () => {
    const first = knownHostsFile(`one.example.com ${serverA.entry}\n`);
    const second = knownHostsFile(`# header\ntwo.example.com ${ecdsa.entry}\n`);
    const all = await readKnownHosts([first, join(tmp, 'does-not-exist'), second]);
    expect(all.map((l) => [l.file, l.line, l.hosts])).toEqual([
      [first, 1, 'one.example.com'],
      [second, 2, 'two.example.com'],
    ]);
  });
});

describe('a known_hosts file that cannot be read', () => {
  // Tests run as root, whom chmod 000 does not stop: a directory, or a symlink loop, fails for anyone.
  async function readFailure(files: string[]): Promise<HitchError> {
    const err = await readKnownHosts(files).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HitchError);
    return err as HitchError;
  }

  it('stops the check with an error naming the file and the reason, instead of reading it as empty', async () => {
    const good = knownHostsFile(`example.com ${serverB.entry}\n`);
    const dir = join(tmp, 'known_hosts-is-a-directory');
    mkdirSync(dir);
    const err = await readFailure([good, dir]);
    expect(err.code).toBe('config');
    expect(err.message).toBe(
      `Cannot read known_hosts file ${dir}: it is a directory — refusing to connect, since a changed host key could not be detected.`,
    );
    expect((err.cause as NodeJS.ErrnoException).code).toBe('EISDIR');
  });

  it('names other read failures too, such as a symlink loop', async () => {
    const loop = join(tmp, 'known_hosts-loop');
    symlinkSync(loop, loop);
    const err = await readFailure([join(tmp, 'does-not-exist'), loop]);
    expect(err.code).toBe('config');
    expect(err.message).toMatch(new RegExp(`^Cannot read known_hosts file ${loop}: too many levels of symbolic links — refusing to connect`));
  });
});

describe('matching a known_hosts host field', () => {
  it('matches a plain name, ignoring case', () => {
    expect(hostFieldMatches('example.com', 'example.com')).toBe(true);
    expect(hostFieldMatches('Example.COM', 'example.com')).toBe(true);
    expect(hostFieldMatches('example.com', 'www.example.com')).toBe(false);
  });

  it('matches any name in a comma-separated list', () => {
    expect(hostFieldMatches('example.com,10.0.0.5', '10.0.0.5')).toBe(true);
    expect(hostFieldMatches('example.com,10.0.0.5', 'example.com')).toBe(true);
    expect(hostFieldMatches('example.com,10.0.0.5', '10.0.0.6')).toBe(false);
  });

  it('matches wildcard patterns', () => {
    expect(hostFieldMatches('*.example.com', 'db.example.com')).toBe(true);
    expect(hostFieldMatches('*.example.com', 'example.com')).toBe(false);
    expect(hostFieldMatches('10.0.0.?', '10.0.0.7')).toBe(true);
    expect(hostFieldMatches('10.0.0.?', '10.0.0.17')).toBe(false);
  });

  it('refuses a name a negated pattern names, even when another pattern matches it', () => {
    expect(hostFieldMatches('*.example.com,!secret.example.com', 'secret.example.com')).toBe(false);
    expect(hostFieldMatches('!secret.example.com,*.example.com', 'secret.example.com')).toBe(false);
    expect(hostFieldMatches('*.example.com,!secret.example.com', 'db.example.com')).toBe(true);
    expect(hostFieldMatches('!secret.example.com', 'db.example.com')).toBe(false);
  });

  it('keeps [host]:port entries apart from the same host on port 22', () => {
    expect(hostFieldMatches('[example.com]:2222', lookupName('example.com', 2222))).toBe(true);
    expect(hostFieldMatches('[example.com]:2222', lookupName('example.com', 22))).toBe(false);
    expect(hostFieldMatches('[example.com]:2222', lookupName('example.com', 2223))).toBe(false);
    expect(hostFieldMatches('example.com', lookupName('example.com', 2222))).toBe(false);
    expect(hostFieldMatches('[*.example.com]:2222', lookupName('db.example.com', 2222))).toBe(true);
  });

  it('matches entries hashed by ssh-keygen -H only against the names they were made from', () => {
    const file = knownHostsFile(
      [`example.com ${serverA.entry}`, `[example.com]:2222 ${serverA.entry}`, `foo.example.com,10.0.0.9 ${serverA.entry}`, ''].join('\n'),
    );
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    rmSync(`${file}.old`);
    const hashed = parseKnownHosts(file, readFileSync(file, 'utf8')).map((l) => l.hosts);
    // ssh-keygen writes one hashed line per name.
    expect(hashed).toHaveLength(4);
    for (const field of hashed) expect(field).toMatch(/^\|1\|[A-Za-z0-9+/]+=*\|[A-Za-z0-9+/]+=*$/);

    const names = ['example.com', '[example.com]:2222', 'foo.example.com', '10.0.0.9'];
    const matches = hashed.map((field) => names.filter((name) => hostFieldMatches(field, name)));
    expect(matches).toEqual([['example.com'], ['[example.com]:2222'], ['foo.example.com'], ['10.0.0.9']]);
    expect(hashed.some((field) => hostFieldMatches(field, 'other.example.com'))).toBe(false);
  });

  it('matches hashed entries whatever the case of the host name, as ssh lowercases it before hashing', () => {
    // ssh lowercases the host name (and HostKeyAlias) before looking it up, so its known_hosts
    // only ever hold hashes of lowercase names, [host]:port ones included.
    const file = knownHostsFile([`web1.example.com ${serverB.entry}`, `[web1.example.com]:2222 ${serverA.entry}`, ''].join('\n'));
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    rmSync(`${file}.old`);
    const lines = parseKnownHosts(file, readFileSync(file, 'utf8'));
    const [plain22, port2222] = lines.map((l) => l.hosts);
    expect(plain22).toMatch(/^\|1\|/);

    expect(hostFieldMatches(plain22!, 'Web1.Example.com')).toBe(true);
    expect(hostFieldMatches(port2222!, '[WEB1.example.COM]:2222')).toBe(true);
    expect(hostFieldMatches(plain22!, 'Web2.Example.com')).toBe(false);
    expect(verifyHostKey(lines, 'Web1.Example.com', 22, serverB.blob)).toEqual({ status: 'known', file, line: 1 });
    expect(verifyHostKey(lines, 'WEB1.EXAMPLE.COM', 2222, serverA.blob)).toEqual({ status: 'known', file, line: 2 });
    // A different key under another spelling of the name is a CHANGED key, never merely unknown.
    expect(verifyHostKey(lines, 'Web1.Example.com', 22, serverA.blob)).toMatchObject({
      status: 'changed',
      expected: [{ fingerprint: opensshFingerprint(serverB), file, line: 1 }],
    });
  });

  it('matches plain entries and [host]:port entries whatever the case on either side', () => {
    const lines = parseKnownHosts('f', `WEB1.example.com ${serverB.entry}\n[Web1.Example.Com]:2222 ${serverB.entry}\n`);
    expect(verifyHostKey(lines, 'web1.EXAMPLE.com', 22, serverB.blob)).toEqual({ status: 'known', file: 'f', line: 1 });
    expect(verifyHostKey(lines, 'wEB1.example.com', 2222, serverB.blob)).toEqual({ status: 'known', file: 'f', line: 2 });
    expect(verifyHostKey(lines, 'Web1.Example.com', 2222, serverA.blob)).toMatchObject({ status: 'changed' });
  });

  it('does not match a malformed hashed entry', () => {
    expect(hostFieldMatches('|1|', 'example.com')).toBe(false);
    expect(hostFieldMatches('|1|c2FsdA==', 'example.com')).toBe(false);
  });
});

describe('verifying the key a server presents', () => {
  it('accepts a key stored for the host and says where it was found', () => {
    const file = knownHostsFile(`# mine\nother.example.com ${serverB.entry}\nexample.com ${serverA.entry}\n`);
    const lines = parseKnownHosts(file, readFileSync(file, 'utf8'));
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toEqual({ status: 'known', file, line: 3 });
  });

  it('agrees with ssh-keygen -F on the line where a hashed entry is found', () => {
    const file = knownHostsFile(`other.example.com ${serverB.entry}\n[example.com]:2222 ${serverA.entry}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    rmSync(`${file}.old`);
    const found = execFileSync('ssh-keygen', ['-F', '[example.com]:2222', '-f', file], { encoding: 'utf8' });
    const opensshLine = Number(/found: line (\d+)/.exec(found)![1]);

    const lines = parseKnownHosts(file, readFileSync(file, 'utf8'));
    expect(verifyHostKey(lines, 'example.com', 2222, serverA.blob)).toEqual({ status: 'known', file, line: opensshLine });
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob).status).toBe('unknown');
  });

  it('reports an unknown host with its fingerprint and key type', () => {
    const lines = parseKnownHosts('f', `other.example.com ${serverA.entry}\n`);
    expect(verifyHostKey(lines, 'new.example.com', 22, serverA.blob)).toEqual({
      status: 'unknown',
      fingerprint: opensshFingerprint(serverA),
      keyType: 'ssh-ed25519',
      otherTypesKnown: [],
    });
  });

  it('reports a key of a new type as unknown, listing the types already known for the host', () => {
    const lines = parseKnownHosts(
      'f',
      [`example.com ${ecdsa.entry}`, `example.com ${rsa.entry}`, `example.com,www.example.com ${ecdsa.entry}`, `other.example.com ${serverB.entry}`].join('\n'),
    );
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toEqual({
      status: 'unknown',
      fingerprint: opensshFingerprint(serverA),
      keyType: 'ssh-ed25519',
      otherTypesKnown: ['ecdsa-sha2-nistp256', 'ssh-rsa'],
    });
  });

  it('reports a changed key with the fingerprints it expected and where each is stored', () => {
    const first = knownHostsFile(`# old laptop\nexample.com ${serverB.entry}\nexample.com ${ecdsa.entry}\n`);
    const second = knownHostsFile(`*.com ${serverB.entry}\n`);
    const lines = [...parseKnownHosts(first, readFileSync(first, 'utf8')), ...parseKnownHosts(second, readFileSync(second, 'utf8'))];
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toEqual({
      status: 'changed',
      fingerprint: opensshFingerprint(serverA),
      keyType: 'ssh-ed25519',
      expected: [
        { fingerprint: opensshFingerprint(serverB), file: first, line: 2 },
        { fingerprint: opensshFingerprint(serverB), file: second, line: 1 },
      ],
    });
  });

  it('accepts any of several keys stored for one host', () => {
    const text = [`example.com ${serverB.entry}`, `example.com ${ecdsa.entry}`, `example.com ${serverA.entry}`, `example.com ${rsa.entry}`].join('\n');
    const lines = parseKnownHosts('f', text);
    expect(verifyHostKey(lines, 'example.com', 22, serverB.blob)).toEqual({ status: 'known', file: 'f', line: 1 });
    expect(verifyHostKey(lines, 'example.com', 22, ecdsa.blob)).toEqual({ status: 'known', file: 'f', line: 2 });
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toEqual({ status: 'known', file: 'f', line: 3 });
    expect(verifyHostKey(lines, 'example.com', 22, rsa.blob)).toEqual({ status: 'known', file: 'f', line: 4 });
  });

  it('refuses a revoked key even when it is also listed as known for the host', () => {
    for (const text of [
      `example.com ${serverA.entry}\n@revoked * ${serverA.entry}\n`,
      `@revoked * ${serverA.entry}\nexample.com ${serverA.entry}\n`,
    ]) {
      const lines = parseKnownHosts('f', text);
      const revokedLine = lines.find((l) => l.marker === 'revoked')!.line;
      expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toEqual({
        status: 'revoked',
        fingerprint: opensshFingerprint(serverA),
        file: 'f',
        line: revokedLine,
      });
    }
  });

  it('still accepts the other keys of a host when one of its keys is revoked', () => {
    const lines = parseKnownHosts('f', `example.com ${serverA.entry}\nexample.com ${ecdsa.entry}\n@revoked * ${serverA.entry}\n`);
    expect(verifyHostKey(lines, 'example.com', 22, ecdsa.blob)).toEqual({ status: 'known', file: 'f', line: 2 });
  });

  it('never treats a @cert-authority key as a known host key', () => {
    const lines = parseKnownHosts('f', `@cert-authority *.example.com ${serverA.entry}\n@cert-authority *.example.com ${serverB.entry}\n`);
    // The CA's own key presented as a host key is simply unknown ...
    expect(verifyHostKey(lines, 'db.example.com', 22, serverA.blob)).toEqual({
      status: 'unknown',
      fingerprint: opensshFingerprint(serverA),
      keyType: 'ssh-ed25519',
      otherTypesKnown: [],
    });
    // ... and a CA key of the same type does not make another key look changed.
    const withPlain = parseKnownHosts('f', `@cert-authority *.example.com ${serverB.entry}\ndb.example.com ${ecdsa.entry}\n`);
    expect(verifyHostKey(withPlain, 'db.example.com', 22, serverA.blob)).toMatchObject({
      status: 'unknown',
      otherTypesKnown: ['ecdsa-sha2-nistp256'],
    });
  });

  it('looks up a host on another port under [host]:port only', () => {
    const lines = parseKnownHosts('f', `example.com ${serverB.entry}\n[example.com]:2222 ${serverA.entry}\n`);
    expect(verifyHostKey(lines, 'example.com', 2222, serverA.blob)).toEqual({ status: 'known', file: 'f', line: 2 });
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toMatchObject({ status: 'changed' });
    expect(verifyHostKey(lines, 'example.com', 2200, serverA.blob)).toMatchObject({ status: 'unknown', otherTypesKnown: [] });
  });
});

describe('trusting a new host', () => {
  it('appends the key so the next check finds it known, in a line OpenSSH can read', async () => {
    const file = join(tmp, 'fresh', 'nested', 'known_hosts');
    await addKnownHost(file, 'example.com', 22, serverA.blob);
    await addKnownHost(file, 'example.com', 2222, ecdsa.blob);

    expect(readFileSync(file, 'utf8')).toBe(`example.com ${serverA.entry}\n[example.com]:2222 ${ecdsa.entry}\n`);
    const lines = await readKnownHosts([file]);
    expect(verifyHostKey(lines, 'example.com', 22, serverA.blob)).toEqual({ status: 'known', file, line: 1 });
    expect(verifyHostKey(lines, 'example.com', 2222, ecdsa.blob)).toEqual({ status: 'known', file, line: 2 });

    const found = execFileSync('ssh-keygen', ['-F', '[example.com]:2222', '-f', file], { encoding: 'utf8' });
    expect(found).toContain('found: line 2');
  });

  it('records the host name lowercased, as ssh writes it', async () => {
    const file = join(tmp, 'lowercased', 'known_hosts');
    await addKnownHost(file, 'Web1.Example.COM', 2222, serverA.blob);
    expect(readFileSync(file, 'utf8')).toBe(`[web1.example.com]:2222 ${serverA.entry}\n`);
  });

  it('creates the file private to the user, in a private directory', async () => {
    const dir = join(tmp, 'private-dir');
    const file = join(dir, 'known_hosts');
    await addKnownHost(file, 'example.com', 22, serverA.blob);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('adds to a file whose last line has no newline without damaging that line', async () => {
    mkdirSync(join(tmp, 'no-newline'), { recursive: true });
    const file = join(tmp, 'no-newline', 'known_hosts');
    writeFileSync(file, `old.example.com ${serverB.entry}`); // edited by hand, no final newline
    await addKnownHost(file, 'new.example.com', 22, serverA.blob);

    const lines = await readKnownHosts([file]);
    expect(verifyHostKey(lines, 'old.example.com', 22, serverB.blob)).toEqual({ status: 'known', file, line: 1 });
    expect(verifyHostKey(lines, 'new.example.com', 22, serverA.blob)).toEqual({ status: 'known', file, line: 2 });
  });
});

// The host catalog is built from the user's OpenSSH config: Hitch lists the aliases a person
// wrote on Host lines (following Include), asks `ssh -G` for each host's settings, and falls
// back to resolving the files itself when the ssh client is missing. Wherever it can, this
// file checks Hitch against the machine's real OpenSSH client rather than against itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HitchError } from '../../main/engine/errors';
import {
  listAliases,
  loadCatalog,
  matchHostPatterns,
  matchPattern,
  parseSshG,
  readConfig,
  resolveFromConfig,
  tokenizeLine,
  type ConfigLine,
} from '../../main/engine/config/ssh-config';

const HOME = userInfo().homedir;
const USER = userInfo().username;
const NO_SUCH_SSH = '/nonexistent/hitch-test/bin/ssh';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'hitch-ssh-config-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Writes a file under a fresh directory of the temp dir and returns its absolute path. */
let fixtureCount = 0;
function fixtureDir(): string {
  const dir = join(tmp, `case-${++fixtureCount}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}
function write(path: string, text: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

/** What the real OpenSSH client resolves for `alias`, as `ssh -G` prints it. */
function sshG(configPath: string, alias: string): string {
  return execFileSync('ssh', ['-G', '-F', configPath, '--', alias], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The path Hitch reads for an identity or known_hosts file (it expands a leading `~/`). */
function onDisk(p: string): string {
  return p.startsWith('~/') ? join(HOME, p.slice(2)) : p;
}

/** Config lines as readConfig would produce them for a single file without Include. */
function lines(text: string): ConfigLine[] {
  const out: ConfigLine[] = [];
  text.split('\n').forEach((raw, n) => {
    const tokens = tokenizeLine(raw);
    if (tokens.length > 0) out.push({ file: 'config', line: n + 1, keyword: tokens[0]!.toLowerCase(), args: tokens.slice(1) });
  });
  return out;
}

// ---------------------------------------------------------------------------------------

describe('reading one line of a config', () => {
  it('splits a keyword and its arguments on spaces and tabs', () => {
    expect(tokenizeLine('HostName example.com')).toEqual(['HostName', 'example.com']);
    expect(tokenizeLine('  \tHost  web\t db   ')).toEqual(['Host', 'web', 'db']);
    expect(tokenizeLine('Host')).toEqual(['Host']);
  });

  it('accepts Keyword=value with or without spaces around the equals sign', () => {
    expect(tokenizeLine('Port=2222')).toEqual(['Port', '2222']);
    expect(tokenizeLine('Port = 2222')).toEqual(['Port', '2222']);
    expect(tokenizeLine('User =alice')).toEqual(['User', 'alice']);
    expect(tokenizeLine('User= alice')).toEqual(['User', 'alice']);
    expect(tokenizeLine('LocalForward=8080 localhost:80')).toEqual(['LocalForward', '8080', 'localhost:80']);
  });

  it('keeps a quoted argument with spaces as one argument, without its quotes', () => {
    expect(tokenizeLine('IdentityFile "/home/me/my keys/id_ed25519"')).toEqual([
      'IdentityFile',
      '/home/me/my keys/id_ed25519',
    ]);
    expect(tokenizeLine("IdentityFile '/keys/with space'")).toEqual(['IdentityFile', '/keys/with space']);
    expect(tokenizeLine('Host a "b c" d')).toEqual(['Host', 'a', 'b c', 'd']);
    expect(tokenizeLine('IdentityFile="/x y/z"')).toEqual(['IdentityFile', '/x y/z']);
  });

  it('drops a trailing comment but keeps a # inside an argument', () => {
    expect(tokenizeLine('Port 22 # the usual one')).toEqual(['Port', '22']);
    expect(tokenizeLine('Port 22 #no-space')).toEqual(['Port', '22']);
    expect(tokenizeLine('Host web # db')).toEqual(['Host', 'web']);
    expect(tokenizeLine('IdentityFile /keys/a#b')).toEqual(['IdentityFile', '/keys/a#b']);
  });

  it('reads nothing from blank and comment lines', () => {
    for (const text of ['', '   ', '\t', '# Host commented-out', '    # indented comment', '#']) {
      expect(tokenizeLine(text)).toEqual([]);
    }
  });

  it('rejects an unterminated quote', () => {
    expect(() => tokenizeLine('IdentityFile "/keys/oops')).toThrow(/unterminated quote/);
  });
});

describe('matching host patterns', () => {
  it('matches a plain pattern only against the same name', () => {
    expect(matchPattern('web', 'web')).toBe(true);
    expect(matchPattern('web2', 'web')).toBe(false);
    expect(matchPattern('web', 'web2')).toBe(false);
  });

  it('lets * stand for any run of characters, including none and including dots', () => {
    expect(matchPattern('db.example.com', '*.example.com')).toBe(true);
    expect(matchPattern('a.b.example.com', '*.example.com')).toBe(true);
    expect(matchPattern('example.com', '*.example.com')).toBe(false);
    expect(matchPattern('web', 'web*')).toBe(true);
    expect(matchPattern('anything at all', '*')).toBe(true);
  });

  it('lets ? stand for exactly one character', () => {
    expect(matchPattern('web1', 'web?')).toBe(true);
    expect(matchPattern('web', 'web?')).toBe(false);
    expect(matchPattern('web12', 'web?')).toBe(false);
  });

  it('treats every other character literally', () => {
    expect(matchPattern('axb', 'a.b')).toBe(false);
    expect(matchPattern('a.b', 'a.b')).toBe(true);
    expect(matchPattern('web+1', 'web+1')).toBe(true);
    expect(matchPattern('webb1', 'web+1')).toBe(false);
    expect(matchPattern('[db]:2222', '[db]:2222')).toBe(true);
    expect(matchPattern('d', '[db]')).toBe(false);
    expect(matchPattern('a(b)', 'a(b)')).toBe(true);
  });

  it('ignores letter case', () => {
    expect(matchPattern('Web.Example.COM', '*.example.com')).toBe(true);
    expect(matchPattern('web.example.com', 'WEB.*')).toBe(true);
  });

  it('matches a Host line when any of its patterns matches', () => {
    expect(matchHostPatterns('db', ['web', 'db'])).toBe(true);
    expect(matchHostPatterns('cache', ['web', 'db'])).toBe(false);
    expect(matchHostPatterns('db.corp', ['web', '*.corp'])).toBe(true);
    expect(matchHostPatterns('db', [])).toBe(false);
  });

  it('never matches a host that a negated pattern names, wherever the negation stands', () => {
    expect(matchHostPatterns('secret.corp', ['*.corp', '!secret.corp'])).toBe(false);
    expect(matchHostPatterns('secret.corp', ['!secret.corp', '*.corp'])).toBe(false);
    expect(matchHostPatterns('db.corp', ['*.corp', '!secret.corp'])).toBe(true);
    expect(matchHostPatterns('db.corp', ['*', '!*.corp'])).toBe(false);
  });

  it('does not match on a negation alone', () => {
    expect(matchHostPatterns('web', ['!db'])).toBe(false);
  });
});

describe('finding the hosts a person can connect to', () => {
  it('lists Host aliases in file order, skipping wildcard and negated patterns and duplicates', async () => {
    const dir = fixtureDir();
    const config = write(
      join(dir, 'config'),
      [
        '# my hosts',
        'Host web db',
        '  HostName 10.0.0.1',
        'Host *.corp !secret.corp',
        '  User corp',
        'Host ??-prod',
        'Host !nope real',
        'Host web',
        '  Port 2222',
        'Match host cache',
        '  User nobody',
        'Host *',
        '  User fallback',
        '',
      ].join('\n'),
    );
    const { lines: read, files, missing } = await readConfig(config);
    expect(missing).toBe(false);
    expect(files).toEqual([config]);
    expect(listAliases(read)).toEqual(['web', 'db', 'real']);
  });

  it('keeps each alias exactly as written, since ssh -G matches Host names by case', () => {
    expect(listAliases(lines('Host Web web WEB\n'))).toEqual(['Web', 'web', 'WEB']);
  });

  it('never lists a Host pattern that would read as an ssh option', () => {
    expect(listAliases(lines('Host -oProxyCommand=evil web\nHost ""\n'))).toEqual(['web']);
  });

  it('keeps every line with its keyword in lower case, its file and its line number', async () => {
    const dir = fixtureDir();
    const config = write(join(dir, 'config'), '\n# comment\nHost web\n    HostName=example.com\n  Port 2222 # ssh on a high port\n');
    const { lines: read } = await readConfig(config);
    expect(read).toEqual([
      { file: config, line: 3, keyword: 'host', args: ['web'] },
      { file: config, line: 4, keyword: 'hostname', args: ['example.com'] },
      { file: config, line: 5, keyword: 'port', args: ['2222'] },
    ]);
  });

  it('reads CRLF line endings like LF', async () => {
    const dir = fixtureDir();
    const config = write(join(dir, 'config'), 'Host web\r\n  Port 2222\r\n');
    const { lines: read } = await readConfig(config);
    expect(read.map((l) => [l.keyword, l.args])).toEqual([
      ['host', ['web']],
      ['port', ['2222']],
    ]);
  });

  it('follows Include of an absolute path, in place of the Include line', async () => {
    const dir = fixtureDir();
    const extra = write(join(dir, 'extra.conf'), 'Host included\n  Port 2201\n');
    const config = write(join(dir, 'config'), `Host first\nInclude ${extra}\nHost last\n`);
    const { lines: read, files } = await readConfig(config);
    expect(files).toEqual([config, extra]);
    expect(read.map((l) => `${l.file === extra ? 'extra' : 'config'}:${l.line} ${l.keyword}`)).toEqual([
      'config:1 host',
      'extra:1 host',
      'extra:2 port',
      'config:3 host',
    ]);
    expect(listAliases(read)).toEqual(['first', 'included', 'last']);
  });

  it('follows Include of a glob pattern, file by file in sorted order, skipping hidden files', async () => {
    const dir = fixtureDir();
    write(join(dir, 'conf.d', '20-db.conf'), 'Host db\n');
    write(join(dir, 'conf.d', '10-web.conf'), 'Host web\n');
    write(join(dir, 'conf.d', '.hidden.conf'), 'Host hidden\n');
    write(join(dir, 'conf.d', 'README'), 'Host readme\n');
    const config = write(join(dir, 'config'), `Include ${dir}/conf.d/*.conf\nHost main\n`);
    const { lines: read, files } = await readConfig(config);
    expect(files).toEqual([config, join(dir, 'conf.d', '10-web.conf'), join(dir, 'conf.d', '20-db.conf')]);
    expect(listAliases(read)).toEqual(['web', 'db', 'main']);
  });

  it('expands glob characters in directory names of an Include path too', async () => {
    const dir = fixtureDir();
    write(join(dir, 'teams', 'alpha', 'hosts.conf'), 'Host alpha-box\n');
    write(join(dir, 'teams', 'beta', 'hosts.conf'), 'Host beta-box\n');
    const config = write(join(dir, 'config'), `Include ${dir}/teams/*/hosts.conf\n`);
    expect(listAliases((await readConfig(config)).lines)).toEqual(['alpha-box', 'beta-box']);
  });

  it('takes several Include arguments on one line', async () => {
    const dir = fixtureDir();
    const a = write(join(dir, 'a.conf'), 'Host a\n');
    const b = write(join(dir, 'b.conf'), 'Host b\n');
    const config = write(join(dir, 'config'), `Include ${b} ${a}\n`);
    expect(listAliases((await readConfig(config)).lines)).toEqual(['b', 'a']);
  });

  it('follows an Include inside an included file', async () => {
    const dir = fixtureDir();
    const deep = write(join(dir, 'nested', 'deep', 'last.conf'), 'Host deepest\n');
    const middle = write(join(dir, 'nested', 'middle.conf'), `Host middle\nInclude ${dir}/nested/deep/*.conf\n`);
    const config = write(join(dir, 'config'), `Include ${middle}\nHost top\n`);
    const { lines: read, files } = await readConfig(config);
    expect(files).toEqual([config, middle, deep]);
    expect(listAliases(read)).toEqual(['middle', 'deepest', 'top']);
  });

  it('ignores an Include that names nothing, as OpenSSH does', async () => {
    const dir = fixtureDir();
    const config = write(
      join(dir, 'config'),
      `Include ${dir}/does-not-exist.conf\nInclude ${dir}/no-such-dir/*.conf\nInclude ${dir}/*.nothing\nHost still-here\n  Port 2202\n`,
    );
    const { lines: read, files, missing } = await readConfig(config);
    expect(missing).toBe(false);
    expect(files).toEqual([config]);
    expect(listAliases(read)).toEqual(['still-here']);
    // OpenSSH agrees that these Include lines are harmless.
    expect(parseSshG('still-here', sshG(config, 'still-here')).port).toBe(2202);
  });

  it('resolves hosts from included files with ssh exactly as it lists them', async () => {
    const dir = fixtureDir();
    write(join(dir, 'conf.d', 'a.conf'), 'Host from-a\n  Port 2301\n');
    // The nested Include comes before any Host line: inside a Host block OpenSSH would apply
    // the included file only to that host.
    write(join(dir, 'conf.d', 'b.conf'), `Include ${dir}/deeper.conf\nHost from-b\n  Port 2302\n`);
    write(join(dir, 'deeper.conf'), 'Host from-deeper\n  Port 2303\n');
    const config = write(join(dir, 'config'), `Include ${dir}/conf.d/*.conf\n`);
    const aliases = listAliases((await readConfig(config)).lines);
    expect(aliases).toEqual(['from-a', 'from-deeper', 'from-b']);
    expect(aliases.map((a) => parseSshG(a, sshG(config, a)).port)).toEqual([2301, 2303, 2302]);
  });

  it('includes only files whose names match the glob exactly in case, as OpenSSH does', async () => {
    const dir = fixtureDir();
    write(join(dir, 'conf.d', 'lower.conf'), 'Host lower\n  Port 2401\n');
    write(join(dir, 'conf.d', 'upper.CONF'), 'Host upper\n  Port 2402\n');
    const config = write(join(dir, 'config'), `Include ${dir}/conf.d/*.conf\n`);
    // The real client reads lower.conf but not upper.CONF: glob(3) is case-sensitive.
    expect(parseSshG('lower', sshG(config, 'lower')).port).toBe(2401);
    expect(parseSshG('upper', sshG(config, 'upper')).port).toBe(22);

    const { lines: read, files } = await readConfig(config);
    expect(files).toEqual([config, join(dir, 'conf.d', 'lower.conf')]);
    expect(listAliases(read)).toEqual(['lower']);
  });

  it('reports a config that does not exist as missing, not as an error', async () => {
    const result = await readConfig(join(tmp, 'no-such-config'));
    expect(result).toEqual({ lines: [], files: [], missing: true });
  });

  it('refuses an Include that includes itself, instead of looping', async () => {
    const dir = fixtureDir();
    const config = join(dir, 'config');
    write(config, `Host loop\nInclude ${config}\n`);
    const err = await readConfig(config).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HitchError);
    expect(err).toMatchObject({ code: 'config', message: expect.stringMatching(/Include nested too deeply/) });
  });

  it('follows Include chains exactly as deep as OpenSSH does, and refuses deeper ones', async () => {
    const chain = (depth: number): string => {
      const dir = fixtureDir();
      for (let i = 0; i < depth; i++) write(join(dir, `f${i}`), `Include ${dir}/f${i + 1}\n`);
      write(join(dir, `f${depth}`), 'Host deep\n  Port 2999\n');
      return join(dir, 'f0');
    };
    const deepest = chain(16);
    expect(parseSshG('deep', sshG(deepest, 'deep')).port).toBe(2999);
    expect(listAliases((await readConfig(deepest)).lines)).toEqual(['deep']);

    const tooDeep = chain(17);
    expect(() => sshG(tooDeep, 'deep')).toThrow(/Too many recursive configuration includes/);
    await expect(readConfig(tooDeep)).rejects.toThrow(/Include nested too deeply/);
  });

  it('names the file and line of an unterminated quote', async () => {
    const dir = fixtureDir();
    const config = write(join(dir, 'config'), 'Host web\n  IdentityFile "/keys/oops\n');
    const err = await readConfig(config).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HitchError);
    expect((err as HitchError).code).toBe('config');
    expect((err as HitchError).message).toBe(`ssh config ${config} line 2: unterminated quote`);
  });

  it('says why a config path that is a directory cannot be read', async () => {
    const dir = fixtureDir();
    const err = await readConfig(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HitchError);
    expect((err as HitchError).message).toBe(`Cannot read ssh config ${dir}: it is a directory`);
  });
});

describe("reading a host's settings from real `ssh -G` output", () => {
  it('takes hostname, user, port, keys, jump host, timeouts and known_hosts files', () => {
    const dir = fixtureDir();
    const config = write(
      join(dir, 'config'),
      [
        'Host web',
        '  HostName 10.0.0.5',
        '  User alice',
        '  Port 2222',
        `  IdentityFile ${dir}/keys/web_ed25519`,
        '  IdentityFile ~/.ssh/work_rsa',
        '  IdentitiesOnly yes',
        '  ProxyJump bastion.example.com',
        `  UserKnownHostsFile ${dir}/known_hosts ${dir}/known_hosts.extra`,
        `  GlobalKnownHostsFile ${dir}/global_known_hosts`,
        '  HostKeyAlias web-key',
        '  ConnectTimeout 7',
        '  IdentityAgent none',
        '',
      ].join('\n'),
    );
    const host = parseSshG('web', sshG(config, 'web'));
    expect(host).toMatchObject({
      alias: 'web',
      hostname: '10.0.0.5',
      user: 'alice',
      port: 2222,
      identitiesOnly: true,
      identityAgent: 'none',
      proxyJump: 'bastion.example.com',
      userKnownHostsFiles: [`${dir}/known_hosts`, `${dir}/known_hosts.extra`],
      globalKnownHostsFiles: [`${dir}/global_known_hosts`],
      hostKeyAlias: 'web-key',
      connectTimeoutSeconds: 7,
    });
    expect(host.identityFiles.map(onDisk)).toEqual([`${dir}/keys/web_ed25519`, join(HOME, '.ssh', 'work_rsa')]);
  });

  it("falls back to OpenSSH's defaults for a host the config says nothing about", () => {
    const dir = fixtureDir();
    const config = write(join(dir, 'config'), 'Host other\n  Port 2000\n');
    const host = parseSshG('plain', sshG(config, 'plain'));
    expect(host).toEqual({
      alias: 'plain',
      hostname: 'plain',
      user: USER,
      port: 22,
      identityFiles: expect.any(Array),
      identitiesOnly: false,
      identityAgent: null,
      proxyJump: null,
      userKnownHostsFiles: [join(HOME, '.ssh', 'known_hosts'), join(HOME, '.ssh', 'known_hosts2')],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
      hostKeyAlias: null,
      connectTimeoutSeconds: null,
      strictHostKeyChecking: 'ask',
      authMethods: ['publickey', 'keyboard-interactive', 'password'],
    });
    expect(host.identityFiles.map(onDisk)).toEqual(
      ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk', 'id_xmss', 'id_dsa'].map((f) => join(HOME, '.ssh', f)),
    );
  });

  it('reads ProxyJump none as no jump host', () => {
    const dir = fixtureDir();
    const config = write(join(dir, 'config'), 'Host direct\n  ProxyJump none\nHost *\n  ProxyJump bastion\n');
    expect(parseSshG('direct', sshG(config, 'direct')).proxyJump).toBeNull();
    expect(parseSshG('other', sshG(config, 'other')).proxyJump).toBe('bastion');
  });

  it('uses the expanded known_hosts paths ssh prints for %h and %p', () => {
    const dir = fixtureDir();
    const config = write(join(dir, 'config'), `Host web\n  HostName web.example.com\n  Port 2222\n  UserKnownHostsFile ${dir}/kh_%h_%p\n`);
    expect(parseSshG('web', sshG(config, 'web')).userKnownHostsFiles).toEqual([`${dir}/kh_web.example.com_2222`]);
  });

  it('names the identity files for this host when IdentityFile uses %h, %r and %p', () => {
    // `ssh -G` prints IdentityFile as written (unlike UserKnownHostsFile and IdentityAgent),
    // so the tokens must be expanded by Hitch before it reads the keys.
    const dir = fixtureDir();
    const config = write(
      join(dir, 'config'),
      `Host web\n  HostName 10.0.0.5\n  User alice\n  Port 2222\n  IdentityFile ${dir}/keys/%h-%r-%p\n`,
    );
    const host = parseSshG('web', sshG(config, 'web'));
    expect(host.identityFiles.map(onDisk)).toEqual([`${dir}/keys/10.0.0.5-alice-2222`]);
  });

  it('keeps port 22 when the output names an impossible port', () => {
    expect(parseSshG('x', 'hostname x\nport 70000\n').port).toBe(22);
    expect(parseSshG('x', 'hostname x\nport 0\n').port).toBe(22);
    expect(parseSshG('x', 'hostname x\nport 2222\n').port).toBe(2222);
  });
});

describe('resolving a host without ssh (the fallback)', () => {
  it('keeps the first value given for a setting', () => {
    const host = resolveFromConfig('web', lines('Host web\n  Port 2222\n  User alice\nHost web\n  Port 3333\n  User bob\n'));
    expect(host.port).toBe(2222);
    expect(host.user).toBe('alice');
  });

  it('applies Host * defaults after the specific host, without overriding it', () => {
    const config = lines('Host web\n  User alice\nHost *\n  User default-user\n  Port 2200\n  ConnectTimeout 9\n');
    expect(resolveFromConfig('web', config)).toMatchObject({ user: 'alice', port: 2200, connectTimeoutSeconds: 9 });
    expect(resolveFromConfig('db', config)).toMatchObject({ user: 'default-user', port: 2200 });
  });

  it('applies settings before the first Host line to every host', () => {
    const config = lines('User everyone\nHost web\n  User alice\n');
    expect(resolveFromConfig('web', config).user).toBe('everyone');
    expect(resolveFromConfig('db', config).user).toBe('everyone');
  });

  it('adds up every IdentityFile that applies, in order', () => {
    const config = lines('Host web\n  IdentityFile /keys/web\nHost db\n  IdentityFile /keys/db\nHost *\n  IdentityFile /keys/all /keys/also\n');
    expect(resolveFromConfig('web', config).identityFiles).toEqual(['/keys/web', '/keys/all', '/keys/also']);
  });

  it('leaves out hosts a negated pattern names', () => {
    const config = lines('Host * !bastion\n  ProxyJump bastion\n');
    expect(resolveFromConfig('web', config).proxyJump).toBe('bastion');
    expect(resolveFromConfig('bastion', config).proxyJump).toBeNull();
  });

  it('skips Match blocks until the next Host line', () => {
    const config = lines('Match host web\n  Port 9999\n  User matched\nHost web\n  Port 2222\n');
    expect(resolveFromConfig('web', config)).toMatchObject({ port: 2222, user: USER });
  });

  it('expands %h, %p, %r, %n, %% and ~ in IdentityFile, and %h in HostName', () => {
    const config = lines(
      'Host web\n  HostName %h.example.com\n  User alice\n  Port 2222\n  IdentityFile ~/keys/%h_%r_%p\n  IdentityFile /k/%n-100%%\n',
    );
    const host = resolveFromConfig('web', config);
    expect(host.hostname).toBe('web.example.com');
    expect(host.identityFiles).toEqual([join(HOME, 'keys', 'web.example.com_alice_2222'), '/k/web-100%']);
  });

  it('reads yes/no and none the way OpenSSH does', () => {
    const host = resolveFromConfig(
      'web',
      lines('Host web\n  IdentitiesOnly YES\n  ProxyJump none\n  HostKeyAlias none\n  IdentityAgent /run/agent.sock\n'),
    );
    expect(host).toMatchObject({ identitiesOnly: true, proxyJump: null, hostKeyAlias: null, identityAgent: '/run/agent.sock' });
  });

  it("uses OpenSSH's defaults when nothing is set", () => {
    expect(resolveFromConfig('plain', [])).toEqual({
      alias: 'plain',
      hostname: 'plain',
      user: USER,
      port: 22,
      identityFiles: ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk', 'id_xmss', 'id_dsa'].map((f) =>
        join(HOME, '.ssh', f),
      ),
      identitiesOnly: false,
      identityAgent: null,
      proxyJump: null,
      userKnownHostsFiles: [join(HOME, '.ssh', 'known_hosts'), join(HOME, '.ssh', 'known_hosts2')],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
      hostKeyAlias: null,
      connectTimeoutSeconds: null,
      strictHostKeyChecking: 'ask',
      authMethods: ['publickey', 'keyboard-interactive', 'password'],
    });
  });

  it('ignores an impossible port or timeout', () => {
    expect(resolveFromConfig('web', lines('Port 99999\nConnectTimeout soon\n'))).toMatchObject({ port: 22, connectTimeoutSeconds: null });
  });

  it('agrees with ssh -G on an ordinary config with defaults, negations and a non-matching Match', async () => {
    const dir = fixtureDir();
    const config = write(
      join(dir, 'config'),
      [
        'Host web',
        '  HostName 10.1.0.1',
        '  Port 2222',
        'Host db db-replica',
        '  HostName db.internal',
        '  User postgres',
        'Match host never-this-one',
        '  User matched',
        'Host * !db-replica',
        '  User deploy',
        '  Port 2200',
        '  IdentityFile /keys/deploy',
        'Host *',
        '  IdentityFile /keys/fallback',
        '',
      ].join('\n'),
    );
    const { lines: read } = await readConfig(config);
    for (const alias of listAliases(read)) {
      const fromSsh = parseSshG(alias, sshG(config, alias));
      const fallback = resolveFromConfig(alias, read);
      expect({ alias, hostname: fallback.hostname, user: fallback.user, port: fallback.port }).toEqual({
        alias,
        hostname: fromSsh.hostname,
        user: fromSsh.user,
        port: fromSsh.port,
      });
      expect(fallback.identityFiles).toEqual(fromSsh.identityFiles.map(onDisk));
    }
  });
});

describe('loading the host catalog', () => {
  const SIMPLE = [
    'Host web',
    '  HostName 10.2.0.1',
    '  User alice',
    '  Port 2222',
    'Host db',
    '  HostName db.example.com',
    'Host *',
    '  User deploy',
    '',
  ].join('\n');

  it('lists every alias with the settings ssh -G gives it', async () => {
    const dir = fixtureDir();
    const configPath = write(join(dir, 'config'), SIMPLE);
    const catalog = await loadCatalog({ configPath, sshBinary: 'ssh' });
    expect(catalog.configPath).toBe(configPath);
    expect(catalog.warnings).toEqual([]);
    expect(catalog.entries.map((e) => [e.alias, e.error, e.resolved?.hostname, e.resolved?.user, e.resolved?.port])).toEqual([
      ['web', null, '10.2.0.1', 'alice', 2222],
      ['db', null, 'db.example.com', 'deploy', 22],
    ]);
  });

  it('falls back to reading the files, and says so, when the ssh client is missing', async () => {
    const dir = fixtureDir();
    const configPath = write(join(dir, 'config'), SIMPLE);
    const catalog = await loadCatalog({ configPath, sshBinary: NO_SUCH_SSH });
    expect(catalog.entries.map((e) => [e.alias, e.error, e.resolved?.hostname, e.resolved?.user, e.resolved?.port])).toEqual([
      ['web', null, '10.2.0.1', 'alice', 2222],
      ['db', null, 'db.example.com', 'deploy', 22],
    ]);
    expect(catalog.warnings).toHaveLength(1);
    expect(catalog.warnings[0]).toContain(`(${NO_SUCH_SSH}) was not found`);
    expect(catalog.warnings[0]).toContain('read from config directly');
    expect(catalog.warnings[0]).toContain('Match blocks are ignored');
  });

  it('gives the same hostname, user and port with or without the ssh client for a simple config', async () => {
    const dir = fixtureDir();
    write(join(dir, 'conf.d', 'team.conf'), 'Host team-box\n  HostName 10.2.0.9\n  Port 2022\n');
    const configPath = write(join(dir, 'config'), `Include ${dir}/conf.d/*.conf\n${SIMPLE}Host bastion\n  User jump\n`);
    const exact = await loadCatalog({ configPath, sshBinary: 'ssh' });
    const fallback = await loadCatalog({ configPath, sshBinary: NO_SUCH_SSH });
    const summary = (c: typeof exact): unknown[] =>
      c.entries.map((e) => ({ alias: e.alias, hostname: e.resolved?.hostname, user: e.resolved?.user, port: e.resolved?.port }));
    expect(summary(exact).map((e) => (e as { alias: string }).alias)).toEqual(['team-box', 'web', 'db', 'bastion']);
    expect(summary(fallback)).toEqual(summary(exact));
  });

  it('tells the person where to add hosts when there is no config yet', async () => {
    const configPath = join(tmp, 'missing-dir', 'config');
    const catalog = await loadCatalog({ configPath, sshBinary: 'ssh' });
    expect(catalog).toMatchObject({
      configPath,
      entries: [],
      warnings: [`No ssh config at ${configPath}: add hosts there or in Hitch to see them here.`],
    });
  });

  it('shows the error ssh reports for a config it rejects, once, and on every host', async () => {
    const dir = fixtureDir();
    const configPath = write(join(dir, 'config'), 'Host web\n  NoSuchOption yes\nHost db\n');
    const catalog = await loadCatalog({ configPath, sshBinary: 'ssh' });
    const expected = `ssh config: ${configPath}: line 2: Bad configuration option: nosuchoption`;
    expect(catalog.entries).toEqual([
      { alias: 'web', source: 'ssh-config', resolved: null, error: expected },
      { alias: 'db', source: 'ssh-config', resolved: null, error: expected },
    ]);
    expect(catalog.warnings).toEqual([expected]);
  });

  it('shows a config Hitch cannot parse as a warning, with no hosts', async () => {
    const dir = fixtureDir();
    const configPath = write(join(dir, 'config'), 'Host web\n  User "alice\n');
    const catalog = await loadCatalog({ configPath, sshBinary: 'ssh' });
    expect(catalog.entries).toEqual([]);
    expect(catalog.warnings).toEqual([`ssh config ${configPath} line 2: unterminated quote`]);
  });
});

describe('which login methods a host may use', () => {
  it('follows PreferredAuthentications and the per-method switches, as ssh -G reports them', () => {
    const dir = fixtureDir();
    const config = write(
      join(dir, 'config'),
      'Host pw\n  PubkeyAuthentication no\nHost order\n  PreferredAuthentications password,publickey\nHost nokbd\n  KbdInteractiveAuthentication no\n',
    );
    expect(parseSshG('pw', sshG(config, 'pw')).authMethods).toEqual(['keyboard-interactive', 'password']);
    expect(parseSshG('order', sshG(config, 'order')).authMethods).toEqual(['password', 'publickey']);
    expect(parseSshG('nokbd', sshG(config, 'nokbd')).authMethods).toEqual(['publickey', 'password']);
  });

  it('reads the same switches without ssh', () => {
    expect(resolveFromConfig('pw', lines('Host pw\n  PasswordAuthentication no\n')).authMethods).toEqual(['publickey', 'keyboard-interactive']);
  });
});

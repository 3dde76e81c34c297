// The host catalog comes from the user's OpenSSH config. We read the files ourselves only to
// find the host aliases (Host lines without wildcards or negation, following Include); each
// host's effective settings come from `ssh -G -F CONFIG ALIAS`, so Match blocks, wildcards
// and defaults behave exactly as they do for OpenSSH. Where `ssh` is missing we fall back to
// resolving from the parsed files and say so.
import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { HitchError } from '../errors';

export interface ConfigLine {
  file: string;
  line: number;
  keyword: string; // lower-case
  args: string[];
}

export interface ResolvedHost {
  alias: string;
  hostname: string;
  user: string;
  port: number;
  identityFiles: string[];
  identitiesOnly: boolean;
  /** `none`, `SSH_AUTH_SOCK` or a socket path, as OpenSSH's IdentityAgent. */
  identityAgent: string | null;
  proxyJump: string | null;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  hostKeyAlias: string | null;
  connectTimeoutSeconds: number | null;
  /** What to do with an unknown host key: ask (default), refuse (yes) or accept and record. */
  strictHostKeyChecking: 'ask' | 'yes' | 'accept-new' | 'no';
  /** The methods the config allows, in its PreferredAuthentications order. */
  authMethods: AuthMethodName[];
}

export type AuthMethodName = 'publickey' | 'keyboard-interactive' | 'password';
const DEFAULT_PREFERRED = 'publickey,keyboard-interactive,password';

/** PreferredAuthentications minus the methods switched off with `…Authentication no`. */
function authMethodsFrom(get: (key: string) => string | undefined): AuthMethodName[] {
  const off = (key: string): boolean => /^(no|false)$/i.test(get(key) ?? '');
  const disabled = new Set<string>();
  if (off('pubkeyauthentication')) disabled.add('publickey');
  if (off('passwordauthentication')) disabled.add('password');
  if (off('kbdinteractiveauthentication') || off('challengeresponseauthentication')) disabled.add('keyboard-interactive');
  return (get('preferredauthentications') ?? DEFAULT_PREFERRED)
    .split(',')
    .map((m) => m.trim())
    .filter((m): m is AuthMethodName => ['publickey', 'keyboard-interactive', 'password'].includes(m) && !disabled.has(m));
}

function strictness(value: string | undefined): ResolvedHost['strictHostKeyChecking'] {
  switch (value?.toLowerCase()) {
    case 'yes':
    case 'true':
      return 'yes';
    case 'accept-new':
      return 'accept-new';
    case 'no':
    case 'off':
    case 'false':
      return 'no';
    default:
      return 'ask';
  }
}

export interface CatalogEntry {
  alias: string;
  source: 'ssh-config' | 'app';
  resolved: ResolvedHost | null;
  error: string | null;
}

export interface Catalog {
  configPath: string;
  entries: CatalogEntry[];
  warnings: string[];
  /** The parsed config, for resolving jump hosts when `ssh` is missing. */
  lines: ConfigLine[];
  sshMissing: boolean;
}

/** A host added in the app: its alias and the `-o Key=Value` settings that define it. */
export interface ExtraHost {
  alias: string;
  sshArgs: string[];
}

export interface CatalogOptions {
  configPath: string;
  /** The ssh client used for `ssh -G`; `ssh` from PATH unless set. */
  sshBinary: string;
}

const home = (): string => userInfo().homedir;

// ---------------------------------------------------------------------------------------
// Reading the files

/** Splits one config line like OpenSSH's argv_split: whitespace, quotes, `keyword=value`. */
export function tokenizeLine(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const s = text.trim();
  if (s === '' || s.startsWith('#')) return out;
  // The keyword may be separated from its first argument by `=` (with optional spaces).
  const kw = /^([^\s=]+)\s*(?:=\s*|\s+|$)/.exec(s);
  if (!kw) return out;
  out.push(kw[1]!);
  i = kw[0].length;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (i >= s.length || s[i] === '#') break;
    let arg = '';
    if (s[i] === '"' || s[i] === "'") {
      const quote = s[i]!;
      const end = s.indexOf(quote, i + 1);
      if (end < 0) throw new Error('unterminated quote');
      arg = s.slice(i + 1, end);
      i = end + 1;
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) arg += s[i++];
    }
    out.push(arg);
  }
  return out;
}

function hasGlob(s: string): boolean {
  return /[*?[]/.test(s);
}

/**
 * Matches one OpenSSH pattern (`*` and `?`) against a string. Case-insensitive by default, as
 * for host names in known_hosts; config Host patterns and file globs pass `''` (exact case).
 */
export function matchPattern(text: string, pattern: string, flags: '' | 'i' = 'i'): boolean {
  const fold = (s: string): string => (flags === 'i' ? s.toLowerCase() : s);
  const t = [...fold(text)];
  const p = [...fold(pattern)];
  // The classic wildcard match with one point to return to (the last `*`): linear in practice
  // and never worse than their product, where a regular expression of many `*` backtracks
  // exponentially and one built from a 32 KiB pattern is refused by V8. (OpenSSH's own
  // match_pattern recurses; a stalled match there stalls one ssh, here every session.)
  let ti = 0;
  let pi = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === t[ti]))) {
      ti++;
      pi++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++mark;
    } else return false;
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

/** A Host line's patterns match when one positive pattern matches and no negated one does. */
export function matchHostPatterns(alias: string, patterns: string[]): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(alias, p.slice(1), '')) return false;
    } else if (matchPattern(alias, p, '')) {
      matched = true;
    }
  }
  return matched;
}

/** Expands `*` and `?` in any path segment, sorted like glob(3). Missing paths expand to nothing. */
async function expandGlob(pattern: string): Promise<string[]> {
  const segments = pattern.split('/').filter((s, idx) => s !== '' || idx === 0);
  let paths = [pattern.startsWith('/') ? '/' : '.'];
  for (const seg of segments.slice(pattern.startsWith('/') ? 1 : 0)) {
    const next: string[] = [];
    for (const base of paths) {
      if (!hasGlob(seg)) {
        next.push(join(base, seg));
        continue;
      }
      const names = await readdir(base).catch(() => [] as string[]);
      for (const name of names.sort()) {
        if (!name.startsWith('.') && matchPattern(name, seg, '')) next.push(join(base, name));
      }
    }
    paths = next;
  }
  return paths;
}

function expandTilde(p: string): string {
  return p === '~' ? home() : p.startsWith('~/') ? join(home(), p.slice(2)) : p;
}

async function readConfigFile(
  file: string,
  lines: ConfigLine[],
  files: string[],
  depth: number,
  required: boolean,
): Promise<void> {
  if (depth > 16) throw new HitchError('config', `ssh config ${file}: Include nested too deeply`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!required) return; // OpenSSH ignores Include patterns that match nothing readable
    if (code === 'ENOENT') throw err;
    const why = code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(code);
    throw new HitchError('config', `Cannot read ssh config ${file}: ${why}`, { cause: err });
  }
  files.push(file);
  const raw = text.split(/\r?\n/);
  for (let n = 0; n < raw.length; n++) {
    let tokens: string[];
    try {
      tokens = tokenizeLine(raw[n]!);
    } catch (err) {
      throw new HitchError('config', `ssh config ${file} line ${n + 1}: ${(err as Error).message}`);
    }
    if (tokens.length === 0) continue;
    const keyword = tokens[0]!.toLowerCase();
    const args = tokens.slice(1);
    if (keyword === 'include') {
      for (const arg of args) {
        const expanded = expandTilde(arg);
        const pattern = isAbsolute(expanded) ? expanded : join(home(), '.ssh', expanded);
        for (const included of await expandGlob(pattern)) {
          await readConfigFile(included, lines, files, depth + 1, false);
        }
      }
      continue;
    }
    lines.push({ file, line: n + 1, keyword, args });
  }
}

/** Reads the config and its Include files in order. A missing config is an empty one. */
export async function readConfig(configPath: string): Promise<{ lines: ConfigLine[]; files: string[]; missing: boolean }> {
  const lines: ConfigLine[] = [];
  const files: string[] = [];
  try {
    await readConfigFile(configPath, lines, files, 0, true);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { lines: [], files: [], missing: true };
    throw err;
  }
  return { lines, files, missing: false };
}

/** Host aliases a person can connect to: Host patterns without wildcards or negation. */
export function listAliases(lines: ConfigLine[]): string[] {
  const seen = new Set<string>();
  for (const { keyword, args } of lines) {
    if (keyword !== 'host') continue;
    for (const p of args) {
      // No command line can carry a NUL byte, and ssh would not take such an alias either.
      if (p.startsWith('!') || hasGlob(p) || p.startsWith('-') || p === '' || p.includes('\0')) continue;
      seen.add(p);
    }
  }
  return [...seen];
}

// ---------------------------------------------------------------------------------------
// Resolving a host

/** Parses `ssh -G` output (`keyword value` lines) into the settings Hitch uses. */
export function parseSshG(alias: string, output: string): ResolvedHost {
  const single = new Map<string, string>();
  const identityFiles: string[] = [];
  for (const line of output.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const key = line.slice(0, sp).toLowerCase();
    const value = line.slice(sp + 1).trim();
    if (key === 'identityfile') identityFiles.push(value);
    else if (!single.has(key)) single.set(key, value);
  }
  const list = (key: string): string[] => (single.get(key) ?? '').split(/\s+/).filter(Boolean);
  const optional = (key: string): string | null => {
    const v = single.get(key);
    return v === undefined || v === 'none' ? null : v;
  };
  const rawPort = Number(single.get('port') ?? 22);
  const port = Number.isInteger(rawPort) && rawPort > 0 && rawPort < 65536 ? rawPort : 22;
  const hostname = single.get('hostname') ?? alias;
  const user = single.get('user') ?? userInfo().username;
  const timeout = single.get('connecttimeout');
  return {
    alias,
    hostname,
    user,
    port,
    // `ssh -G` prints IdentityFile as written; OpenSSH expands its tokens only when connecting.
    identityFiles: identityFiles.map((f) => expandTokens(f, { alias, hostname, user, port })),
    identitiesOnly: single.get('identitiesonly') === 'yes',
    identityAgent: single.get('identityagent') ?? null,
    proxyJump: optional('proxyjump'),
    userKnownHostsFiles: list('userknownhostsfile'),
    globalKnownHostsFiles: list('globalknownhostsfile'),
    hostKeyAlias: optional('hostkeyalias'),
    connectTimeoutSeconds: timeout && timeout !== 'none' && /^\d+$/.test(timeout) ? Number(timeout) : null,
    strictHostKeyChecking: strictness(single.get('stricthostkeychecking')),
    authMethods: authMethodsFrom((k) => single.get(k)),
  };
}

class SshMissing extends Error {}

function runSshG(sshBinary: string, configPath: string, alias: string, extraArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    // No shell: the alias is one argv element, after `--` so it can never be an option.
    const child = spawn(sshBinary, ['-G', '-F', configPath, ...extraArgs, '--', alias], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' || e.code === 'EACCES' ? new SshMissing(`${sshBinary}: ${e.code}`) : e);
    });
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else {
        const first = err.split('\n').find((l) => l.trim() !== '') ?? `ssh -G exited with status ${code}`;
        reject(new HitchError('config', `ssh config: ${first.trim()}`));
      }
    });
  });
}

const DEFAULT_IDENTITY_FILES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk', 'id_xmss', 'id_dsa'];

function expandTokens(value: string, host: { alias: string; hostname: string; user: string; port: number }): string {
  return expandTilde(value).replace(/%([%hpruLdn])/g, (_, t: string) => {
    switch (t) {
      case '%':
        return '%';
      case 'h':
        return host.hostname;
      case 'n':
        return host.alias;
      case 'p':
        return String(host.port);
      case 'r':
        return host.user;
      case 'u':
        return userInfo().username;
      case 'd':
        return home();
      default:
        return '%' + t;
    }
  });
}

/**
 * Resolves a host from the parsed config without `ssh`: first value wins, IdentityFile adds
 * up, Match blocks are skipped. Close to OpenSSH for ordinary configs; `ssh -G` is exact.
 */
export function resolveFromConfig(alias: string, lines: ConfigLine[]): ResolvedHost {
  const single = new Map<string, string[]>();
  const identityFiles: string[] = [];
  let active = true; // lines before the first Host apply to every host
  for (const { keyword, args } of lines) {
    if (keyword === 'host') {
      active = matchHostPatterns(alias, args);
      continue;
    }
    if (keyword === 'match') {
      active = false;
      continue;
    }
    if (!active) continue;
    if (keyword === 'identityfile') identityFiles.push(...args);
    else if (!single.has(keyword)) single.set(keyword, args);
  }
  const first = (k: string): string | undefined => single.get(k)?.[0];
  const port = Number(first('port') ?? 22);
  const base = {
    alias,
    hostname: alias,
    user: first('user') ?? userInfo().username,
    port: Number.isInteger(port) && port > 0 && port < 65536 ? port : 22,
  };
  const hostname = first('hostname') ? expandTokens(first('hostname')!, base) : alias;
  const host = { ...base, hostname };
  const files = identityFiles.length > 0 ? identityFiles : DEFAULT_IDENTITY_FILES.map((f) => `~/.ssh/${f}`);
  const none = (v: string | undefined): string | null => (v === undefined || v === 'none' ? null : v);
  const timeout = first('connecttimeout');
  return {
    ...host,
    identityFiles: files.map((f) => expandTokens(f, host)),
    identitiesOnly: first('identitiesonly')?.toLowerCase() === 'yes',
    identityAgent: first('identityagent') ?? null,
    proxyJump: none(first('proxyjump')),
    userKnownHostsFiles: (single.get('userknownhostsfile') ?? ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']).map((f) =>
      expandTokens(f, host),
    ),
    globalKnownHostsFiles: single.get('globalknownhostsfile') ?? ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    hostKeyAlias: none(first('hostkeyalias')),
    connectTimeoutSeconds: timeout && /^\d+$/.test(timeout) ? Number(timeout) : null,
    strictHostKeyChecking: strictness(first('stricthostkeychecking')),
    authMethods: authMethodsFrom(first),
  };
}

/** Runs `fn` over `items` with at most `limit` at a time, keeping order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Applies `-o Key=Value` / `-l` / `-p` overrides on top of a fallback resolution, as ssh would. */
function applyArgs(host: ResolvedHost, args: string[]): ResolvedHost {
  const out = { ...host };
  for (let i = 0; i + 1 < args.length; i += 2) {
    const [flag, value] = [args[i]!, args[i + 1]!];
    const [key, v] = flag === '-l' ? ['user', value] : flag === '-p' ? ['port', value] : [value.slice(0, value.indexOf('=')).toLowerCase(), value.slice(value.indexOf('=') + 1)];
    if (key === 'hostname') out.hostname = v;
    else if (key === 'user') out.user = v;
    else if (key === 'port' && /^\d+$/.test(v)) out.port = Number(v);
    else if (key === 'identityfile') out.identityFiles = [expandTilde(v), ...out.identityFiles];
    else if (key === 'proxyjump') out.proxyJump = v === 'none' ? null : v;
  }
  return out;
}

/** Resolves a host with `ssh -G` (or the fallback), applying extra ssh arguments. */
async function resolveOne(
  opts: CatalogOptions,
  lines: ConfigLine[],
  alias: string,
  extraArgs: string[],
  sshMissing: () => boolean,
  markMissing: () => void,
): Promise<ResolvedHost> {
  if (!sshMissing()) {
    try {
      return parseSshG(alias, await runSshG(opts.sshBinary, opts.configPath, alias, extraArgs));
    } catch (err) {
      if (!(err instanceof SshMissing)) throw err;
      markMissing();
    }
  }
  return applyArgs(resolveFromConfig(alias, lines), extraArgs);
}

/** Splits a ProxyJump hop, `[user@]host[:port]` or `ssh://[user@]host[:port]`. */
export function parseHop(spec: string): { host: string; user: string | null; port: number | null } {
  const bare = spec.startsWith('ssh://') ? spec.slice(6) : spec;
  const at = bare.lastIndexOf('@');
  const user = at > 0 ? bare.slice(0, at) : null;
  let rest = at > 0 ? bare.slice(at + 1) : bare;
  let port: number | null = null;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed) {
    rest = bracketed[1]!;
    port = bracketed[2] ? Number(bracketed[2]) : null;
  } else {
    const m = /^([^:]+):(\d+)$/.exec(rest);
    if (m) {
      rest = m[1]!;
      port = Number(m[2]);
    }
  }
  if (!rest || rest.startsWith('-') || /[\s\0]/.test(rest) || (user !== null && (user.startsWith('-') || /[\s\0]/.test(user)))) {
    throw new HitchError('config', `ProxyJump hop "${spec}" is not [user@]host[:port].`);
  }
  if (port !== null && (port < 1 || port > 65535)) throw new HitchError('config', `ProxyJump hop "${spec}" has an invalid port.`);
  return { host: rest, user, port };
}

/** Resolves a ProxyJump hop with the user's config applied, as `ssh -J` does. */
export async function resolveHop(catalog: Catalog, opts: CatalogOptions, spec: string): Promise<ResolvedHost> {
  const hop = parseHop(spec);
  const args = [...(hop.user ? ['-l', hop.user] : []), ...(hop.port ? ['-p', String(hop.port)] : [])];
  return resolveOne(
    opts,
    catalog.lines,
    hop.host,
    args,
    () => catalog.sshMissing,
    () => (catalog.sshMissing = true),
  );
}

/** Loads the catalog: aliases from the files plus hosts added in the app, settings from `ssh -G`. */
export async function loadCatalog(opts: CatalogOptions, extra: ExtraHost[] = []): Promise<Catalog> {
  const { configPath, sshBinary } = opts;
  const warnings: string[] = [];
  let parsed: Awaited<ReturnType<typeof readConfig>>;
  try {
    parsed = await readConfig(configPath);
  } catch (err) {
    const message = err instanceof HitchError ? err.message : `Cannot read ssh config ${configPath}: ${String(err)}`;
    warnings.push(message);
    parsed = { lines: [], files: [], missing: false };
  }
  if (parsed.missing && extra.length === 0) warnings.push(`No ssh config at ${configPath}: add hosts there or in Hitch to see them here.`);
  const fromConfig = listAliases(parsed.lines);
  const taken = new Set(fromConfig);
  const wanted: { alias: string; source: CatalogEntry['source']; args: string[] }[] = fromConfig.map((alias) => ({
    alias,
    source: 'ssh-config',
    args: [],
  }));
  for (const host of extra) {
    if (taken.has(host.alias)) {
      warnings.push(`The host "${host.alias}" added in Hitch is hidden by a Host of the same name in ${basename(configPath)}.`);
      continue;
    }
    wanted.push({ alias: host.alias, source: 'app', args: host.sshArgs });
  }
  let sshMissing = false;
  const configErrors = new Set<string>();
  const entries = await mapLimit(wanted, 8, async ({ alias, source, args }): Promise<CatalogEntry> => {
    try {
      const resolved = await resolveOne(opts, parsed.lines, alias, args, () => sshMissing, () => (sshMissing = true));
      return { alias, source, resolved, error: null };
    } catch (err) {
      const message = err instanceof HitchError ? err.message : String(err);
      if (err instanceof HitchError) configErrors.add(message);
      return { alias, source, resolved: null, error: message };
    }
  });
  if (sshMissing) {
    warnings.push(
      `The OpenSSH client (${sshBinary}) was not found, so host settings were read from ${basename(configPath)} ` +
        `directly; Match blocks are ignored. Install openssh-client for exact results.`,
    );
  }
  warnings.push(...configErrors);
  return { configPath, entries, warnings, lines: parsed.lines, sshMissing };
}

export function defaultConfigPath(): string {
  return join(home(), '.ssh', 'config');
}

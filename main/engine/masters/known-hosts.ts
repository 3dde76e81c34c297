// Host key verification against OpenSSH known_hosts files: plain and hashed (`|1|salt|hash`)
// host patterns, `[host]:port` for non-default ports, several keys per host, `@revoked`
// honoured and `@cert-authority` lines skipped (Hitch does not verify host certificates).
import { createHash, createHmac } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HitchError } from '../errors';
import { matchPattern } from '../config/ssh-config';

export interface KnownHostLine {
  file: string;
  line: number;
  marker: 'revoked' | 'cert-authority' | null;
  hosts: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { status: 'known'; file: string; line: number }
  | { status: 'unknown'; fingerprint: string; keyType: string; otherTypesKnown: string[] }
  | { status: 'changed'; fingerprint: string; keyType: string; expected: { fingerprint: string; file: string; line: number }[] }
  | { status: 'revoked'; fingerprint: string; file: string; line: number };

/** OpenSSH's `SHA256:` fingerprint of a public key blob (base64 without padding). */
export function fingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

/** The key type named inside an SSH public key blob (its first string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return '';
  const len = key.readUInt32BE(0);
  return key.subarray(4, 4 + len).toString('latin1');
}

/**
 * Lowercases ASCII letters only, like OpenSSH's lowercase() (tolower(3) byte by byte), which
 * ssh applies to the host name and HostKeyAlias before any known_hosts lookup or hashing.
 */
export function lowercaseHost(name: string): string {
  return name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/**
 * The name known_hosts files store a host under: `host`, or `[host]:port` off port 22,
 * lowercased as OpenSSH does, so a hashed entry made for `web1.example.com` matches `Web1.Example.com`.
 */
export function lookupName(host: string, port: number): string {
  const name = lowercaseHost(host);
  return port === 22 ? name : `[${name}]:${port}`;
}

export function parseKnownHosts(file: string, text: string): KnownHostLine[] {
  const out: KnownHostLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const fields = lines[n]!.trim().split(/\s+/);
    if (fields[0] === '' || fields[0]!.startsWith('#')) continue;
    let marker: KnownHostLine['marker'] = null;
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority';
      fields.shift();
    } else if (fields[0]!.startsWith('@')) {
      continue; // an unknown marker: skip the line as OpenSSH does
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) continue;
    out.push({ file, line: n + 1, marker, hosts, keyType, key: Buffer.from(b64, 'base64') });
  }
  return out;
}

/** Whether a known_hosts host field (hashed, or a comma list of patterns) names `name`. */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    // Hashed over the lowercased name, as ssh hashes and looks up (case cannot be ignored after hashing).
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(lowercaseHost(name)).digest('base64');
    return digest === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (matchPattern(name, pattern.slice(1))) return false;
    } else if (matchPattern(name, pattern)) {
      matched = true;
    }
  }
  return matched;
}

const READ_FAILURES: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a directory in its path is a file',
  EIO: 'input/output error',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
};

/**
 * Reads known_hosts files in order. A missing file (ENOENT) holds no keys; any other failure
 * to read one rejects with a `config` HitchError: the file could hold a key that would show
 * the host's key has changed, so treating it as empty could accept an impostor as merely new.
 */
export async function readKnownHosts(files: string[]): Promise<KnownHostLine[]> {
  const all: KnownHostLine[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      const why = (code && READ_FAILURES[code]) ?? (code ? `${code} (${(err as Error).message})` : String(err));
      throw new HitchError(
        'config',
        `Cannot read known_hosts file ${file}: ${why} — refusing to connect, since a changed host key could not be detected.`,
        { cause: err },
      );
    }
    all.push(...parseKnownHosts(file, text));
  }
  return all;
}

/** Decides what OpenSSH would: revoked beats known beats changed beats unknown. */
export function verifyHostKey(lines: KnownHostLine[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = lookupName(host, port);
  const keyType = keyTypeOf(key);
  const fp = fingerprint(key);
  const forHost = lines.filter((l) => hostFieldMatches(l.hosts, name));
  const revoked = forHost.find((l) => l.marker === 'revoked' && l.key.equals(key));
  if (revoked) return { status: 'revoked', fingerprint: fp, file: revoked.file, line: revoked.line };
  const plain = forHost.filter((l) => l.marker === null);
  const same = plain.find((l) => l.key.equals(key));
  if (same) return { status: 'known', file: same.file, line: same.line };
  const sameType = plain.filter((l) => l.keyType === keyType);
  if (sameType.length > 0) {
    return {
      status: 'changed',
      fingerprint: fp,
      keyType,
      expected: sameType.map((l) => ({ fingerprint: fingerprint(l.key), file: l.file, line: l.line })),
    };
  }
  return { status: 'unknown', fingerprint: fp, keyType, otherTypesKnown: [...new Set(plain.map((l) => l.keyType))] };
}

/** Appends a host key to a known_hosts file, creating its directory privately. */
export async function addKnownHost(file: string, host: string, port: number, key: Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Never glue the entry onto a last line that lacks its newline.
  const last = await readFile(file).then((b) => b.at(-1), () => undefined);
  const sep = last !== undefined && last !== 0x0a ? '\n' : '';
  const line = `${sep}${lookupName(host, port)} ${keyTypeOf(key)} ${key.toString('base64')}\n`;
  await appendFile(file, line, { mode: 0o600 });
}

// Hosts a person adds in the app, kept in our own JSON file beside (never inside) their
// ~/.ssh/config. Every change replaces the file atomically, so a crash leaves either the old
// or the new version; a file we cannot understand is moved aside, never overwritten.
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { moveAside, SerialQueue, writeAtomically } from '../atomic-file';
import { HitchError } from '../errors';
import type { Logger } from '../log';

/**
 * The file format this build reads and writes. When the shape changes, bump it and upgrade
 * older documents in `parseDocument` one version at a time; version 1 is the first.
 */
const FORMAT_VERSION = 1;

// ---------------------------------------------------------------------------------------
// Validation. Values end up as `ssh -o Key=Value`, so each is checked strictly enough that it
// can only ever mean that one setting: no spaces (argument separators), no leading '-', no '%'
// (an ssh token) and no control characters.

const SPACE_OR_CONTROL = /[\s\p{Cc}]/u;
const ALIAS = /^[A-Za-z0-9._-]+$/;
// name@domain is allowed because people log in to directory-joined hosts that way.
const USER = /^[A-Za-z0-9._@-]+$/;
const DNS_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function nameProblem(v: string, max: number, pattern: RegExp, allowed: string): string | null {
  if (v === '') return 'must not be empty';
  if (SPACE_OR_CONTROL.test(v)) return 'must not contain spaces or control characters';
  if (v.startsWith('-')) return "must not start with '-'";
  if (v.length > max) return `must be at most ${max} characters`;
  return pattern.test(v) ? null : `may only contain ${allowed}`;
}

const aliasProblem = (v: string): string | null =>
  nameProblem(v, 64, ALIAS, "letters, digits, '.', '_' and '-'");
const userProblem = (v: string): string | null =>
  v.startsWith('@') ? "must not start with '@'" : nameProblem(v, 64, USER, "letters, digits, '.', '_', '-' and '@'");

function hostnameProblem(v: string): string | null {
  if (v === '') return 'must not be empty';
  if (SPACE_OR_CONTROL.test(v)) return 'must not contain spaces or control characters';
  if (v.startsWith('-')) return "must not start with '-'";
  if (isIPv6(v) && !v.includes('%')) return null; // a zone id's '%' would be read as an ssh token
  if (/^[\d.]+$/.test(v)) return isIPv4(v) ? null : 'is not a valid IPv4 address';
  const name = v.endsWith('.') ? v.slice(0, -1) : v;
  if (name.length <= 253 && name.split('.').every((label) => DNS_LABEL.test(label))) return null;
  return 'must be a DNS name, an IPv4 address or an IPv6 address';
}

function identityFileProblem(v: string): string | null {
  if (v === '') return 'must not be empty';
  if (/\p{Cc}/u.test(v)) return 'must not contain line breaks or control characters';
  if (!isAbsolute(v) && !v.startsWith('~/')) return "must be an absolute path or start with '~/'";
  // OpenSSH expands these in IdentityFile; a path from a file picker means them literally.
  if (v.includes('%') || v.includes('${')) return "must not contain '%' or '${'";
  return v.length > 4096 ? 'must be at most 4096 characters' : null;
}

/** One ProxyJump hop: `[user@]host[:port]`, host being a name, an alias, IPv4 or `[IPv6]`. */
function hopProblem(hop: string): string | null {
  if (hop === '') return 'has an empty entry';
  const at = hop.lastIndexOf('@'); // OpenSSH splits at the last '@' too
  const user = at >= 0 ? hop.slice(0, at) : null;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(hop.slice(at + 1));
  if (!m) return `entry "${hop}" must look like [user@]host[:port]`;
  const [, ipv6, host, port] = m;
  const userWhy = user === null ? null : userProblem(user);
  if (userWhy) return `entry "${hop}": user ${userWhy}`;
  if (ipv6 !== undefined && !isIPv6(ipv6)) return `entry "${hop}": "${ipv6}" is not an IPv6 address`;
  const hostWhy = host === undefined || aliasProblem(host) === null ? null : hostnameProblem(host);
  if (hostWhy) return `entry "${hop}": host ${hostWhy}`;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    return `entry "${hop}": port must be from 1 to 65535`;
  }
  return null;
}

function proxyJumpProblem(v: string): string | null {
  if (v === '') return 'must not be empty';
  if (SPACE_OR_CONTROL.test(v)) return 'must not contain spaces or control characters';
  if (v.length > 1024) return 'must be at most 1024 characters';
  for (const hop of v.split(',')) {
    const why = hopProblem(hop);
    if (why) return why;
  }
  return null;
}

const text = (problem: (v: string) => string | null) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? 'is required' : 'must be a string') })
    .superRefine((v, ctx) => {
      const why = problem(v);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    });

const PORT = 'must be a whole number from 1 to 65535';

export const savedHostSchema = z.strictObject(
  {
    id: text(aliasProblem),
    hostname: text(hostnameProblem),
    user: text(userProblem).optional(),
    port: z.number({ error: PORT }).int(PORT).min(1, PORT).max(65535, PORT).optional(),
    identityFile: text(identityFileProblem).optional(),
    proxyJump: text(proxyJumpProblem).optional(),
    rememberSecrets: z.boolean({ error: 'must be true or false' }).default(false),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'must be an object' : undefined) },
);

export type SavedHost = z.infer<typeof savedHostSchema>;

const documentSchema = z.strictObject({
  version: z.literal(FORMAT_VERSION),
  hosts: z.array(savedHostSchema),
});

/** Zod issues as one sentence fragment that names each field and says what is wrong. */
function describeIssues(error: z.ZodError): string {
  const parts = new Set<string>();
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const s = issue.keys.length > 1 ? 's' : '';
      parts.add(`unknown field${s} ${issue.keys.map((k) => `"${k}"`).join(', ')}`);
    } else {
      parts.add(`${issue.path.join('.') || 'the host'} ${issue.message}`);
    }
  }
  return [...parts].join('; ');
}

function validate(input: unknown): SavedHost {
  const parsed = savedHostSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new HitchError('bad-request', `Cannot save this host: ${describeIssues(parsed.error)}.`);
}

/** `-o Key=Value` pairs for `ssh -G … -- <id>`, so OpenSSH applies the user's config defaults. */
export function savedHostSshArgs(host: SavedHost): string[] {
  const h = validate(host); // the safety argument rests on validation, so never skip it
  const options: [string, string | number | undefined][] = [
    ['HostName', h.hostname],
    ['Port', h.port],
    ['User', h.user],
    ['IdentityFile', h.identityFile === undefined ? undefined : configArg(h.identityFile)],
    ['ProxyJump', h.proxyJump],
  ];
  return options.flatMap(([key, value]) => (value === undefined ? [] : ['-o', `${key}=${value}`]));
}

/** Quotes a path with spaces, quotes or backslashes the way OpenSSH splits a config line. */
function configArg(v: string): string {
  return /[\s"'\\]/.test(v) ? `"${v.replace(/["\\]/g, '\\$&')}"` : v;
}

// ---------------------------------------------------------------------------------------
// The file

type Parsed =
  | { kind: 'ok'; hosts: SavedHost[] }
  | { kind: 'newer'; version: number }
  | { kind: 'corrupt'; reason: string };

function parseDocument(bytes: Buffer): Parsed {
  let doc: unknown;
  try {
    // fatal: invalid UTF-8 is corruption, not something to paper over with U+FFFD
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    return { kind: 'corrupt', reason: `not valid JSON: ${errorText(err)}` };
  }
  const version = typeof doc === 'object' && doc !== null ? (doc as { version?: unknown }).version : undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    return { kind: 'corrupt', reason: 'it has no valid "version" field' };
  }
  if (version > FORMAT_VERSION) return { kind: 'newer', version };
  const parsed = documentSchema.safeParse(doc);
  if (!parsed.success) return { kind: 'corrupt', reason: describeIssues(parsed.error) };
  const seen = new Set<string>();
  for (const { id } of parsed.data.hosts) {
    if (seen.has(id.toLowerCase())) return { kind: 'corrupt', reason: `host "${id}" appears twice` };
    seen.add(id.toLowerCase());
  }
  return { kind: 'ok', hosts: parsed.data.hosts };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------
// The store

export class HostStore {
  private hosts: SavedHost[] = [];
  private loaded = false;
  /** Why changes are refused this run, or null when the store is writable. */
  private readOnly: string | null = null;
  /** Every load and change runs after the previous one, so no write is lost to a race. */
  private readonly queue = new SerialQueue();

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** Reads the file. Missing → empty; corrupt → moved aside; newer or unreadable → read-only. */
  load(): Promise<{ warning: string | null }> {
    return this.queue.run(async () => {
      this.hosts = [];
      this.readOnly = null;
      this.loaded = true;
      let bytes: Buffer;
      try {
        bytes = await readFile(this.file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { warning: null };
        return this.refuseWrites(
          `Cannot read saved hosts file ${this.file} (${errorText(err)}); saved hosts are read-only ` +
            `for this run so nothing in it is overwritten.`,
        );
      }
      const doc = parseDocument(bytes);
      if (doc.kind === 'ok') {
        this.hosts = doc.hosts;
        return { warning: null };
      }
      if (doc.kind === 'newer') {
        return this.refuseWrites(
          `Saved hosts file ${this.file} was written by a newer Hitch (format version ${doc.version}), ` +
            `so it is left untouched and saved hosts are read-only for this run; update Hitch to use them.`,
        );
      }
      let backup: string;
      try {
        backup = await moveAside(this.file);
      } catch (err) {
        return this.refuseWrites(
          `Saved hosts file ${this.file} is unusable (${doc.reason}) and could not be moved aside ` +
            `(${errorText(err)}); saved hosts are read-only for this run so nothing in it is lost.`,
        );
      }
      const warning =
        `Saved hosts file ${this.file} was unusable (${doc.reason}), so it was moved to ${backup} ` +
        `and Hitch starts with no saved hosts.`;
      this.log.warn('saved hosts file moved aside', { file: this.file, backup, reason: doc.reason });
      return { warning };
    });
  }

  list(): SavedHost[] {
    return this.hosts.map((h) => ({ ...h }));
  }

  get(id: string): SavedHost | undefined {
    const host = this.hosts.find((h) => h.id === id);
    return host && { ...host };
  }

  add(input: unknown): Promise<SavedHost> {
    return this.change((hosts) => {
      const host = validate(input);
      assertUnique(hosts, host.id);
      return { hosts: [...hosts, host], result: host };
    });
  }

  /** Merges `patch` into the host; a `null` field clears it. Renaming `id` is allowed if unique. */
  update(id: string, patch: unknown): Promise<SavedHost> {
    return this.change((hosts) => {
      const current = findOrThrow(hosts, id);
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
        throw new HitchError('bad-request', `Cannot update host "${id}": the change must be an object.`);
      }
      const merged: Record<string, unknown> = { ...current, ...patch };
      for (const key of Object.keys(merged)) if (merged[key] === null) delete merged[key];
      const host = validate(merged);
      assertUnique(
        hosts.filter((h) => h !== current),
        host.id,
      );
      return { hosts: hosts.map((h) => (h === current ? host : h)), result: host };
    });
  }

  remove(id: string): Promise<void> {
    return this.change((hosts) => {
      const current = findOrThrow(hosts, id);
      return { hosts: hosts.filter((h) => h !== current), result: undefined };
    });
  }

  private refuseWrites(warning: string): { warning: string } {
    this.readOnly = warning;
    this.log.warn('saved hosts are read-only', { file: this.file, reason: warning });
    return { warning };
  }

  /** Computes the next list, writes it, and only then makes it current: a failed write changes nothing. */
  private change<T>(next: (hosts: SavedHost[]) => { hosts: SavedHost[]; result: T }): Promise<T> {
    return this.queue.run(async () => {
      // Writing before reading would replace hosts saved in an earlier run.
      if (!this.loaded) throw new HitchError('internal', 'Saved hosts were changed before they were loaded.');
      if (this.readOnly) throw new HitchError('config', this.readOnly);
      const { hosts, result } = next(this.hosts);
      try {
        await writeAtomically(this.file, JSON.stringify({ version: FORMAT_VERSION, hosts }, null, 2) + '\n');
      } catch (err) {
        throw new HitchError('internal', `Could not save hosts to ${this.file}: ${errorText(err)}`, { cause: err });
      }
      this.hosts = hosts;
      this.log.info('saved hosts changed', { file: this.file, count: hosts.length });
      return typeof result === 'object' && result !== null ? ({ ...result } as T) : result;
    });
  }
}

/** Ids are unique ignoring case, as OpenSSH matches host names without regard to case. */
function assertUnique(hosts: SavedHost[], id: string): void {
  const clash = hosts.find((h) => h.id.toLowerCase() === id.toLowerCase());
  if (clash) {
    throw new HitchError('bad-request', `A saved host named "${clash.id}" already exists; choose another id.`);
  }
}

function findOrThrow(hosts: SavedHost[], id: string): SavedHost {
  const host = hosts.find((h) => h.id === id);
  if (!host) throw new HitchError('unknown-host', `There is no saved host "${id}".`);
  return host;
}

// The ssh_config text that sends plain `ssh host`, scp, sftp, rsync and git through Hitch's
// control sockets (per host: ControlPath to the master's socket, ControlMaster no, so that
// without a live Hitch master ssh simply connects on its own), and the one-line change that
// Includes it in the user's ssh config: shown first, made only when asked.
import type { Stats } from 'node:fs';
import { lstat, mkdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SshConfigInclude, SshConfigSnippet } from '../../../preload/api';
import { writeAtomically } from '../atomic-file';
import { HitchError } from '../errors';

export interface SnippetHost {
  alias: string;
  controlPath: string;
  /** Hosts added in Hitch are unknown to ssh: their address goes into the snippet too. */
  address: { hostname: string; port: number; user: string } | null;
}

/** A value as ssh_config reads it: `%` escaped (ControlPath expands tokens), quoted when it has spaces. */
function configValue(v: string): string {
  const escaped = v.replace(/%/g, '%%');
  return /\s/.test(escaped) ? `"${escaped}"` : escaped;
}

export function snippetText(hosts: SnippetHost[]): string {
  const lines = [
    '# Written by Hitch. While Hitch has a master for one of these hosts, ssh, scp, sftp, rsync',
    '# and git ride its connection (no second login); otherwise ssh connects on its own as usual.',
    '# Hitch rewrites this file when its host list changes.',
    '',
  ];
  for (const h of hosts) {
    lines.push(`Host ${h.alias}`);
    if (h.address) lines.push(`  HostName ${h.address.hostname}`, `  Port ${h.address.port}`, `  User ${h.address.user}`);
    lines.push(`  ControlPath ${configValue(h.controlPath)}`, '  ControlMaster no', '');
  }
  return lines.join('\n');
}

export function snippet(hosts: SnippetHost[], path: string): SshConfigSnippet {
  return { text: snippetText(hosts), path, hosts: hosts.map((h) => h.alias) };
}

export function includeLine(snippetPath: string): string {
  return `Include ${/\s/.test(snippetPath) ? `"${snippetPath}"` : snippetPath}`;
}

/** The file an edit of the ssh config lands in, and what it holds now. */
interface ConfigFile {
  /** The regular file to replace: the config itself, or the file its symlink points to. */
  target: string;
  text: string;
  /** The target's mode and owner, kept by the new file; null when there is no config yet. */
  stats: Stats | null;
  /** Why Hitch will not replace it (the change is still shown, for the person to make). */
  refusal: string | null;
}

/**
 * Finds the file to edit. A symlinked config (dotfiles kept in a repository, stow, chezmoi)
 * stays a symlink: its target is the file that is replaced, as an editor saving through the
 * link would do. A link to nothing, or to something other than a regular file, is refused
 * rather than guessed at; so is a file with other hard links, which a replacement would
 * leave on the old contents, and (unless Hitch runs as root) a file someone else owns.
 */
async function openConfig(configPath: string): Promise<ConfigFile> {
  const link = await lstat(configPath).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
  if (link === null) return { target: configPath, text: '', stats: null, refusal: null };
  let target = configPath;
  if (link.isSymbolicLink()) {
    try {
      target = await realpath(configPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ELOOP' && code !== 'ENOTDIR') throw err;
      const why = code === 'ELOOP' ? 'it is a loop of symlinks' : 'it is a symlink to a file that does not exist';
      return { target: configPath, text: '', stats: null, refusal: why };
    }
  }
  const stats = target === configPath ? link : await stat(target);
  const what = target === configPath ? 'it' : `its symlink target ${target}`;
  const uid = process.getuid?.();
  let refusal: string | null = null;
  if (!stats.isFile()) return { target, text: '', stats: null, refusal: `${what} is not a regular file` };
  if (stats.nlink > 1) refusal = `${what} has ${stats.nlink} hard links, which replacing the file would break`;
  else if (uid !== undefined && uid !== 0 && stats.uid !== uid) refusal = `${what} belongs to user id ${stats.uid}, and a replacement would belong to you`;
  return { target, text: await readFile(target, 'utf8'), stats, refusal };
}

/** The same file, unchanged since it was read (an editor may have saved it in between). */
async function unchanged(file: ConfigFile): Promise<boolean> {
  const now = await stat(file.target).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
  if (now === null || file.stats === null) return now === file.stats;
  return now.ino === file.stats.ino && now.dev === file.stats.dev && now.size === file.stats.size && now.mtimeMs === file.stats.mtimeMs;
}

function includes(config: string, snippetPath: string): boolean {
  return config.split('\n').some((l) => {
    // On the trimmed line: a lazy group before trailing spaces backtracks quadratically.
    const m = /^include\s+(.+)$/i.exec(l.trim());
    return m !== null && m[1]!.split(/\s+/).some((p) => p.replace(/^"|"$/g, '') === snippetPath);
  });
}

/**
 * The Include change: shown (apply false) or made (apply true). The line goes first in the
 * file, so that, ssh taking the first value it reads, the snippet's ControlPath wins over any
 * `Host *` further down. The config is replaced atomically (temp file in its directory,
 * fsync, rename), keeping its mode and owner: ssh never reads half a file, and a failed
 * write leaves the old one whole. Through a symlink, the link's target is replaced.
 */
export async function includeSnippet(configPath: string, snip: SshConfigSnippet, apply: boolean): Promise<SshConfigInclude> {
  const line = includeLine(snip.path);
  const file = await openConfig(configPath);
  const config = file.text;
  const alreadyIncluded = includes(config, snip.path);
  const after = alreadyIncluded ? config : `${line}\n${config.length > 0 ? '\n' : ''}${config}`;
  const preview = after.split('\n').slice(0, 8).join('\n');
  let applied = false;
  if (apply) {
    const refuse = (why: string): never => {
      throw new HitchError('config', `Hitch did not change ${configPath}: ${why}. Add the line "${line}" at its top yourself.`);
    };
    if (!alreadyIncluded && file.refusal !== null) refuse(file.refusal);
    await mkdir(dirname(snip.path), { recursive: true });
    await writeAtomically(snip.path, snip.text);
    if (!alreadyIncluded) {
      if (!(await unchanged(file))) refuse('it changed while Hitch was editing it; try again');
      // The new file keeps the old one's permissions and owner (ssh refuses a config others may write).
      const { stats } = file;
      const owner = stats && process.getuid ? { uid: stats.uid, gid: stats.gid } : undefined;
      await writeAtomically(file.target, after, { mode: stats ? stats.mode & 0o7777 : 0o600, owner });
      applied = true;
    }
  }
  return { configPath, snippetPath: snip.path, line, alreadyIncluded, applied, preview };
}

// What the file browser does on a host, over the master's SFTP session: list a directory,
// make one, rename without replacing, delete (a directory with everything in it, never
// following a symlink out of it), and find a shell's working directory from /proc.
import type { DirectoryView, FileEntry } from '../../../preload/api';
import { HitchError } from '../errors';
import type { SftpSession } from './sftp-session';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** The kind of file a mode says. */
export function fileType(mode: number): FileEntry['type'] {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return 'directory';
    case S_IFREG:
      return 'file';
    case S_IFLNK:
      return 'symlink';
    default:
      return 'other';
  }
}

/** `drwxr-xr-x`, as `ls -l` writes a mode (setuid, setgid and sticky included). */
export function permissionsText(mode: number): string {
  const kind: Record<number, string> = { 0o040000: 'd', 0o100000: '-', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p', 0o140000: 's' };
  const bit = (mask: number, c: string): string => (mode & mask ? c : '-');
  const special = (exec: number, flag: number, on: string): string => (mode & flag ? (mode & exec ? on : on.toUpperCase()) : mode & exec ? 'x' : '-');
  return (
    (kind[mode & S_IFMT] ?? '?') +
    bit(0o400, 'r') + bit(0o200, 'w') + special(0o100, 0o4000, 's') +
    bit(0o040, 'r') + bit(0o020, 'w') + special(0o010, 0o2000, 's') +
    bit(0o004, 'r') + bit(0o002, 'w') + special(0o001, 0o1000, 't')
  );
}

/** The last part of a path, for display and for "DST is a directory". */
export function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1) || trimmed || '/';
}

/** A name a directory can hold: not empty, not `.` or `..`, no slash or NUL. */
export function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\0]/.test(name);
}

export function joinRemote(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

export async function listDirectory(sftp: SftpSession, hostId: string, path: string): Promise<DirectoryView> {
  const absolute = await sftp.realpath(path);
  const stats = await sftp.stat(absolute);
  if (!stats.isDirectory()) throw new HitchError('bad-request', `${absolute} on ${hostId} is not a directory.`);
  const listed = await sftp.readdir(absolute);
  const entries: FileEntry[] = listed
    // No file in a directory is named with a slash or is `.`/`..`: a server that says so is not
    // to be followed (a download named `../../x` would land outside the folder chosen for it).
    .filter((e) => isPlainName(e.filename))
    .map((e) => ({
      name: e.filename,
      type: fileType(e.attrs.mode),
      size: Number.isSafeInteger(e.attrs.size) ? e.attrs.size : 0,
      mtime: Number.isFinite(e.attrs.mtime) ? e.attrs.mtime * 1000 : 0,
      mode: e.attrs.mode,
      permissions: permissionsText(e.attrs.mode),
      uid: e.attrs.uid,
      gid: e.attrs.gid,
    }));
  return { hostId, path: absolute, entries };
}

/** Makes the directory; an existing one of that name is `exists`. Resolves with its absolute path. */
export async function makeDirectory(sftp: SftpSession, hostId: string, path: string): Promise<string> {
  if (await lstatOrNull(sftp, path)) throw new HitchError('exists', `${path} already exists on ${hostId}.`);
  await sftp.mkdir(path);
  return sftp.realpath(path);
}

/**
 * Renames `from` to `to`, never replacing: `exists` if `to` is there. The check and the rename
 * are two requests; plain SFTP rename (which never replaces) is used when `to` was free, so a
 * file appearing in between is not replaced either.
 */
export async function renamePath(sftp: SftpSession, hostId: string, from: string, to: string): Promise<void> {
  if (await lstatOrNull(sftp, to)) throw new HitchError('exists', `${to} already exists on ${hostId}: rename refused rather than replace it.`);
  await sftp.lstat(from); // a missing source is named as such
  await sftp.renameNoReplace(from, to);
}

/**
 * Deletes a file, a symlink (never what it points to), or a directory and everything in it.
 * Entries are lstat'ed, so a symlink inside is removed as a link and never followed.
 */
export async function deletePath(sftp: SftpSession, path: string): Promise<void> {
  const stats = await sftp.lstat(path);
  if (!stats.isDirectory()) {
    await sftp.unlink(path);
    return;
  }
  for (const entry of await sftp.readdir(path)) {
    if (entry.filename === '.' || entry.filename === '..') continue;
    const child = joinRemote(path, entry.filename);
    if (fileType(entry.attrs.mode) === 'directory') await deletePath(sftp, child);
    else await sftp.unlink(child);
  }
  await sftp.rmdir(path);
}

/** The working directory of process `pid` on the host: the target of /proc/PID/cwd (Linux). */
export async function processCwd(sftp: SftpSession, hostId: string, pid: number): Promise<string> {
  if (!Number.isSafeInteger(pid) || pid < 1) throw new HitchError('bad-request', `${pid} is not a process id.`);
  try {
    const target = await sftp.readlink(`/proc/${pid}/cwd`);
    if (!target.startsWith('/')) throw new Error(`an unexpected link target ${JSON.stringify(target)}`);
    // A deleted directory reads as "/path (deleted)": still the best answer there is.
    return target;
  } catch (err) {
    if (err instanceof HitchError && err.code === 'permission-denied') throw err;
    throw new HitchError(
      'not-found',
      `The working directory of process ${pid} on ${hostId} cannot be read (${(err as Error).message}); this needs a Linux host with /proc.`,
      { cause: err },
    );
  }
}

async function lstatOrNull(sftp: SftpSession, path: string): Promise<unknown> {
  try {
    return await sftp.lstat(path);
  } catch (err) {
    if (err instanceof HitchError && err.code === 'not-found') return null;
    throw err;
  }
}

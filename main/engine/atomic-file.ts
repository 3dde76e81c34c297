// Files Hitch owns are replaced whole: a crash leaves the old version or the new one, and a
// file that cannot be understood is moved aside rather than overwritten.
import { randomUUID } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HitchError } from './errors';
import type { Logger } from './log';

/** Renames `file` to `<file>.corrupt-<timestamp>`, picking a name that does not exist yet. */
export async function moveAside(file: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/:/g, '-'); // ':' is not allowed in Windows names
  for (let n = 0; ; n++) {
    const backup = `${file}.corrupt-${stamp}${n === 0 ? '' : `-${n}`}`;
    const taken = await lstat(backup).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    );
    if (!taken) {
      await rename(file, backup);
      return backup;
    }
  }
}

export interface AtomicWriteOptions {
  /** Permission bits of the new file, set with fchmod so the umask cannot narrow them (default 0o600). */
  mode?: number;
  /** Owner and group of the new file, when they differ from what it gets by default; only root can give it away. */
  owner?: { uid: number; gid: number };
}

/**
 * Temp file + fsync + rename + directory fsync: readers see the old file or the new one.
 * The temp file sits in the same directory (a rename never crosses file systems). `file` itself
 * is replaced: callers that must not replace a symlink resolve it first.
 */
export async function writeAtomically(file: string, data: string, opts: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await sweepLeftovers(dir, basename(file));
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const fh = await open(temp, 'wx', 0o600);
    try {
      if (opts.owner) {
        const now = await fh.stat();
        if (now.uid !== opts.owner.uid || now.gid !== opts.owner.gid) await fh.chown(opts.owner.uid, opts.owner.gid);
      }
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  // Makes the rename itself durable. Windows cannot open a directory, and there the rename
  // is already as durable as it gets, so a failure here is not worth failing the save.
  const dh = await open(dir, 'r').catch(() => null);
  await dh?.sync().catch(() => {});
  await dh?.close();
}

/** Whether a process with that pid exists (one of another user's counts: EPERM). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Temp files of `name` that a process killed mid-save left behind (its pid is gone): removed,
 * so that crashes do not pile them up. Another live process's, and our own, are left alone.
 */
async function sweepLeftovers(dir: string, name: string): Promise<void> {
  const prefix = `.${name}.`;
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !entry.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-f-]{36}\.tmp$/.exec(entry.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !alive(pid)) await rm(join(dir, entry), { force: true });
  }
}

/** Runs operations one after another, in order; one that fails does not stop the next. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op, op);
    this.tail = run.catch(() => {});
    return run;
  }
}

/**
 * Saves one of Hitch's files (writeAtomically); a failure is logged and thrown as a HitchError
 * naming the file, e.g. "Could not save settings to …: ENOSPC…".
 */
export async function saveFile(file: string, data: string, what: string, log: Logger): Promise<void> {
  try {
    await writeAtomically(file, data);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    log.error(`${what} not saved`, { file, error });
    throw new HitchError('internal', `Could not save ${what} to ${file}: ${error}`, { cause: err });
  }
}

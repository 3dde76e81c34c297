// Files Hitch owns are replaced whole: a crash leaves the old version or the new one, and a
// file that cannot be understood is moved aside rather than overwritten.
import { randomUUID } from 'node:crypto';
import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

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

/** Temp file + fsync + rename + directory fsync: readers see the old file or the new one. */
export async function writeAtomically(file: string, data: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const fh = await open(temp, 'wx', 0o600);
    try {
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

// Ready masters' control sockets by host alias, as symbolic links in the runtime directory
// (`<runtimeDir>/masters/ALIAS` → the master's control socket), so that `hitch exec ALIAS`
// can run its command over a ready master at once: no exchange with the engine socket and no
// client code loaded, so a script calling it in a loop pays little more than Node's own start.
// The process serving the engine socket keeps them, following the engine. A link is only a
// shortcut: the command checks that it and the socket are this user's, and asks the engine
// whenever it cannot use one (none, a stale one, one not private).
import { mkdir, rename, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../engine/log';
import { masterLinkPath, MASTERS_DIR } from './master-link-path';

/** What the links are made from: the engine (Engine.readyControlPaths, told of each change). */
export interface MasterLinkSource {
  readyControlPaths(): Map<string, string>;
  onControlPathsChanged(listener: () => void): () => void;
}

export interface MasterLinks {
  /** Resolves once the links match the engine's state as of now (tests). */
  settled(): Promise<void>;
  /** Stops following the engine and removes its links. */
  close(): Promise<void>;
}

/**
 * Keeps `<runtimeDir>/masters/` in step with the engine: a link for each alias whose master is
 * ready with a control socket, none for any other. Links left by an engine that crashed are
 * removed first. Changes are applied one at a time, links that must go before new ones; a
 * burst of changes makes one pass, and a link that fails is tried again on the next.
 */
export function publishMasterLinks(source: MasterLinkSource, runtimeDir: string, log: Logger): MasterLinks {
  const dir = join(runtimeDir, MASTERS_DIR);
  /** What each link points to now, by path. */
  const linked = new Map<string, string>();
  let temps = 0;
  let queue: Promise<void> = rm(dir, { recursive: true, force: true });
  let scheduled = false;
  let closed = false;
  const failed = (what: string, path: string, err: unknown): void => log.warn(`master link not ${what}`, { path, error: (err as Error).message });

  const apply = async (): Promise<void> => {
    scheduled = false;
    const wanted = new Map<string, string>();
    if (!closed) {
      for (const [alias, socket] of source.readyControlPaths()) {
        const path = masterLinkPath(runtimeDir, alias);
        if (path) wanted.set(path, socket);
      }
    }
    // Most passes change nothing (a master's session count moved): no file is touched then.
    if (wanted.size === linked.size && [...wanted].every(([path, socket]) => linked.get(path) === socket)) return;
    // Made again if it went (a cleaned runtime directory): what it held went with it.
    if (!closed && (await mkdir(dir, { recursive: true, mode: 0o700 })) !== undefined) linked.clear();
    for (const path of [...linked.keys()]) {
      if (linked.get(path) === wanted.get(path)) continue;
      linked.delete(path);
      await unlink(path).catch((err: NodeJS.ErrnoException) => err.code === 'ENOENT' || failed('removed', path, err));
    }
    for (const [path, socket] of wanted) {
      if (linked.get(path) === socket) continue;
      // Made under a temporary name and renamed into place: a reader sees no link or the whole one.
      // `%t` never starts an encoded alias (percent is always followed by two hex digits).
      const temp = join(dir, `%tmp${process.pid}.${temps++}`);
      try {
        await symlink(socket, temp);
        await rename(temp, path);
        linked.set(path, socket);
      } catch (err) {
        failed('made', path, err);
        await unlink(temp).catch(() => undefined);
      }
    }
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    queue = queue.then(apply).catch((err: Error) => log.warn('master links not updated', { dir, error: err.message }));
  };
  const off = source.onControlPathsChanged(schedule);
  schedule();

  return {
    settled: () => queue,
    async close() {
      off();
      closed = true;
      schedule();
      await queue;
      // Only if empty: a newer engine may be using it already.
      await rmdir(dir).catch(() => undefined);
    },
  };
}

// Ready masters' control sockets by host alias, as symbolic links in the runtime directory
// (`<runtimeDir>/masters/ALIAS` → the master's control socket), so that `hitch exec ALIAS`
// can run its command over a ready master at once: no exchange with the engine socket and no
// client code loaded, so a script calling it in a loop pays little more than Node's own start.
// The process serving the engine socket keeps them, from the engine's events. A link is only
// a shortcut: the command checks that the socket is this user's and falls back to asking the
// engine whenever anything is off (no link, a stale one, a refused session).
import { mkdir, rename, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../engine/log';
import { masterLinkPath, MASTERS_DIR } from './master-link-path';

/** What the links are made from: the engine (Engine.readyControlPaths and its events). */
export interface MasterLinkSource {
  readyControlPaths(): Map<string, string>;
  onEvent(listener: (event: { event: string }) => void): () => void;
}

export interface MasterLinks {
  /** Resolves once the links match the engine's state as of now (tests). */
  settled(): Promise<void>;
  /** Stops following the engine and removes every link. */
  close(): Promise<void>;
}

/**
 * Keeps `<runtimeDir>/masters/` in step with the engine: a link for each alias whose master is
 * ready with a control socket, none for any other. Links left by an engine that crashed are
 * removed first. Changes are applied one at a time; a burst of events makes one pass.
 */
export function publishMasterLinks(source: MasterLinkSource, runtimeDir: string, log: Logger): MasterLinks {
  const dir = join(runtimeDir, MASTERS_DIR);
  /** What each link points to now, by file name. */
  const linked = new Map<string, string>();
  let temps = 0;
  let queue: Promise<void> = rm(dir, { recursive: true, force: true }).then(() => mkdir(dir, { mode: 0o700 }).then(() => undefined));
  let scheduled = false;
  let closed = false;

  const apply = async (): Promise<void> => {
    scheduled = false;
    const wanted = new Map<string, string>();
    if (!closed) {
      for (const [alias, socket] of source.readyControlPaths()) {
        const path = masterLinkPath(runtimeDir, alias);
        if (path) wanted.set(path, socket);
      }
    }
    for (const [path, socket] of wanted) {
      if (linked.get(path) === socket) continue;
      // Made under a temporary name and renamed into place: a reader sees the old link or the new.
      // `%t` never starts an encoded alias (percent is always followed by two hex digits).
      const temp = join(dir, `%tmp${process.pid}.${temps++}`);
      await symlink(socket, temp);
      await rename(temp, path);
      linked.set(path, socket);
    }
    for (const path of [...linked.keys()]) {
      if (wanted.has(path)) continue;
      linked.delete(path);
      await unlink(path).catch(() => undefined);
    }
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    queue = queue.then(apply).catch((err: Error) => log.warn('master links not updated', { dir, error: err.message }));
  };
  const off = source.onEvent((e) => {
    if (e.event === 'master.changed' || e.event === 'catalog.changed') schedule();
  });
  schedule();

  return {
    settled: () => queue,
    async close() {
      off();
      closed = true;
      schedule();
      await queue;
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

// Where each master's control socket lives: a private directory (0700) under
// $XDG_RUNTIME_DIR/hitch, else <dataDir>/sockets, and a name hashed from the local host, the
// destination's host, port and user (and its jump hosts) like OpenSSH's ControlPath %C, so
// that the path stays short: Unix socket paths are limited (108 bytes on Linux, 104 on macOS)
// and Node silently truncates longer ones.
import { createHash } from 'node:crypto';
import { lstat, chmod, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';

/**
 * Longest control path accepted, in bytes. OpenSSH binds `<path>.<16 random chars>` first and
 * links it into place; so does Hitch, and 90 leaves room for that everywhere.
 */
export const MAX_CONTROL_PATH_BYTES = 90;

export function defaultControlSocketDir(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime && isAbsolute(runtime) ? join(runtime, 'hitch') : join(dataDir, 'sockets');
}

export interface Destination {
  hostname: string;
  port: number;
  user: string;
  /** The ProxyJump chain, when the master reaches the host through jump hosts. */
  jump: string | null;
}

/** The control path of a destination: 16 hex digits of SHA-1 over what OpenSSH's %C hashes. */
export function controlPathFor(dir: string, dest: Destination, localHost = hostname()): string {
  const hash = createHash('sha1')
    .update(localHost + dest.hostname + String(dest.port) + dest.user + (dest.jump ?? ''))
    .digest('hex')
    .slice(0, 16);
  return join(dir, hash);
}

/** Why a control path cannot be used, or null when it can. */
export function controlPathProblem(path: string): string | null {
  const bytes = Buffer.byteLength(path);
  if (bytes >= MAX_CONTROL_PATH_BYTES) {
    return `control socket path ${path} is ${bytes} bytes; Unix socket paths must stay under ${MAX_CONTROL_PATH_BYTES} (set XDG_RUNTIME_DIR or a shorter data directory)`;
  }
  return null;
}

/**
 * Creates the socket directory (0700) or checks an existing one: it must be a directory of
 * this user, not a symlink, and nobody else may enter it.
 */
export async function preparePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not to this user (${uid})`);
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

// Where the engine links a ready master's control socket for `hitch exec` (master-links.ts).
// A module of its own, with nothing but node:path: `hitch exec` reads it before anything else.
import { join } from 'node:path';

export const MASTERS_DIR = 'masters';
/**
 * The longest Unix socket path Hitch connects to or serves: sockaddr_un's sun_path holds 108
 * bytes on Linux and 104 on macOS, the final NUL included, and Node silently truncates longer
 * ones. Here, with nothing heavy beside it, for `hitch exec`; the engine socket uses it too.
 */
export const MAX_SOCKET_PATH_BYTES = 100;

/**
 * Where the link for `alias` is, or null when it can have none (its path would be too long
 * for a Unix socket path). The alias is percent-encoded, all but lower-case letters, digits
 * and `._-`: a `/` stays in the name, and `Prod` and `prod` (two hosts to ssh) stay two files
 * where the file system does not tell case apart.
 */
export function masterLinkPath(runtimeDir: string, alias: string): string | null {
  let name = '';
  for (const byte of Buffer.from(alias, 'utf8')) {
    const c = String.fromCharCode(byte);
    name += /[a-z0-9._-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (name === '.' || name === '..') name = name.replaceAll('.', '%2E');
  const path = join(runtimeDir, MASTERS_DIR, name);
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES ? path : null;
}

import { userInfo } from 'node:os';
import { join } from 'node:path';

/** Expands a leading `~/` the way OpenSSH does: from the passwd entry, not $HOME. */
export function expandHome(p: string): string {
  return p === '~' ? userInfo().homedir : p.startsWith('~/') ? join(userInfo().homedir, p.slice(2)) : p;
}

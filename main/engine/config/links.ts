// ssh:// links (draft-ietf-secsh-scp-sftp-ssh-uri): `ssh://[user@]host[:port][/]`. A link
// opens a session on a host the catalog knows (reusing its master); a host it does not know is
// added only after the person confirms (Engine.openLink). Pure functions; the desktop shell
// registers the protocol and passes links to the engine's `link.open`.
import type { HostView } from '../../../preload/api';

export interface SshLink {
  user: string | null;
  host: string;
  port: number | null;
}

const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const USER = /^[A-Za-z0-9._][A-Za-z0-9._@-]{0,63}$/;

/** Parses an ssh:// link; null for anything else, or anything that is not clearly a host. */
export function parseSshLink(text: string): SshLink | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'ssh:' || url.search || url.hash || (url.pathname !== '' && url.pathname !== '/')) return null;
  if (url.password) return null; // never accept a password in a link
  // The URI draft allows `;fingerprint=…` after the user; Hitch verifies host keys itself.
  let user: string | null = null;
  try {
    user = url.username ? decodeURIComponent(url.username).split(';')[0]! : null;
  } catch {
    return null; // a malformed %-escape
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port ? Number(url.port) : null;
  const ipv6 = url.hostname.startsWith('[');
  if (!host || (!ipv6 && !HOST.test(host)) || host.startsWith('-')) return null;
  if (user !== null && !USER.test(user)) return null;
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { user, host, port };
}

/** The first argument of a command line that looks like an ssh:// link (checked by the engine). */
export function linkInArgs(argv: readonly string[]): string | null {
  return argv.find((arg) => arg.startsWith('ssh://')) ?? null;
}

/** Where a link connects, as a person reads it: `user@host:port`. */
export function linkTarget(link: SshLink): string {
  const host = link.host.includes(':') ? `[${link.host}]` : link.host;
  return `${link.user ?? '(your user name)'}@${host}:${link.port ?? 22}`;
}

/**
 * The catalog host a link means: an alias of that name, else a host with that host name;
 * the link's user and port, when it gives them, must match too.
 */
export function hostForLink(link: SshLink, hosts: readonly HostView[]): HostView | null {
  const fits = (h: HostView): boolean => (link.user === null || h.user === link.user) && (link.port === null || h.port === link.port);
  return hosts.find((h) => h.id === link.host && fits(h)) ?? hosts.find((h) => h.hostname === link.host && fits(h)) ?? null;
}

/** What to add to Hitch for a link no host matches: an alias built from the link itself. */
export function hostFromLink(link: SshLink): { id: string; hostname: string; user?: string; port?: number } {
  const id = [link.user, link.host.replace(/[^A-Za-z0-9._-]/g, '-'), link.port].filter((x) => x !== null).join('-').slice(0, 64);
  return { id, hostname: link.host, ...(link.user ? { user: link.user } : {}), ...(link.port ? { port: link.port } : {}) };
}

// The ssh_config text that sends plain `ssh host`, scp, sftp, rsync and git through Hitch's
// control sockets (per host: ControlPath to the master's socket, ControlMaster no, so that
// without a live Hitch master ssh simply connects on its own), and the one-line change that
// Includes it in the user's ssh config: shown first, made only when asked.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SshConfigInclude, SshConfigSnippet } from '../../../preload/api';
import { writeAtomically } from '../atomic-file';

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

async function readConfig(configPath: string): Promise<string> {
  try {
    return await readFile(configPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

function includes(config: string, snippetPath: string): boolean {
  return config.split('\n').some((l) => {
    const m = /^\s*include\s+(.+?)\s*$/i.exec(l);
    return m !== null && m[1]!.split(/\s+/).some((p) => p.replace(/^"|"$/g, '') === snippetPath);
  });
}

/**
 * The Include change: shown (apply false) or made (apply true). The line goes first in the
 * file, so that, ssh taking the first value it reads, the snippet's ControlPath wins over any
 * `Host *` further down. The file is written in place (a symlinked config stays a symlink).
 */
export async function includeSnippet(configPath: string, snip: SshConfigSnippet, apply: boolean): Promise<SshConfigInclude> {
  const line = includeLine(snip.path);
  const config = await readConfig(configPath);
  const alreadyIncluded = includes(config, snip.path);
  const after = alreadyIncluded ? config : `${line}\n${config.length > 0 ? '\n' : ''}${config}`;
  const preview = after.split('\n').slice(0, 8).join('\n');
  let applied = false;
  if (apply) {
    await mkdir(dirname(snip.path), { recursive: true });
    await writeAtomically(snip.path, snip.text);
    if (!alreadyIncluded) {
      await mkdir(dirname(configPath), { recursive: true, mode: 0o700 });
      await writeFile(configPath, after, { mode: 0o600 });
      applied = true;
    }
  }
  return { configPath, snippetPath: snip.path, line, alreadyIncluded, applied, preview };
}

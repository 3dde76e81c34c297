// Where the engine reads and writes: every path can be set by flag or environment, so tests
// and headless users never touch the real ~/.ssh or app data unless they mean to.
import { join } from 'node:path';
import { userInfo } from 'node:os';
import type { EngineOptions } from './engine';
import { osKeychain } from './keychain';
import type { Logger } from './log';
import { defaultConfigPath } from './ssh-config';

export interface PathFlags {
  'ssh-config'?: string | undefined;
  'data-dir'?: string | undefined;
  'known-hosts'?: string | undefined;
  ssh?: string | undefined;
}

/** The flags every entry point accepts, for node:util parseArgs. */
export const pathFlagSpec = {
  'ssh-config': { type: 'string' },
  'data-dir': { type: 'string' },
  'known-hosts': { type: 'string' },
  ssh: { type: 'string' },
} as const;

export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CONFIG_HOME || join(userInfo().homedir, '.config'), 'hitch');
}

/** Flags win over HITCH_* environment variables, which win over the defaults. */
export function engineOptions(
  flags: PathFlags,
  env: NodeJS.ProcessEnv,
  log: Logger,
  dataDirDefault: string = defaultDataDir(env),
): EngineOptions {
  const dataDir = flags['data-dir'] ?? env.HITCH_DATA_DIR ?? dataDirDefault;
  return {
    sshConfigPath: flags['ssh-config'] ?? env.HITCH_SSH_CONFIG ?? defaultConfigPath(),
    sshBinary: flags.ssh ?? env.HITCH_SSH ?? 'ssh',
    dataDir,
    knownHostsPath: flags['known-hosts'] ?? env.HITCH_KNOWN_HOSTS ?? join(dataDir, 'known_hosts'),
    authSock: env.SSH_AUTH_SOCK,
    secrets: osKeychain(),
    log,
  };
}

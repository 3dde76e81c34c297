// Where the engine reads and writes, and how long idle masters live: every setting can be
// given by flag or environment, so tests and headless users never touch the real ~/.ssh or
// app data unless they mean to.
import { join } from 'node:path';
import type { EngineOptions } from '../engine';
import { osKeychain } from '../masters/keychain';
import type { Logger } from '../log';
import { defaultConfigPath } from './ssh-config';
import { defaultDataDir, parseIdleTimeout, type EngineFlags } from './flags';

export { defaultDataDir, engineFlagSpec, parseIdleTimeout, runtimeDirOf, type EngineFlags } from './flags';

/** Flags win over HITCH_* environment variables, which win over the defaults. */
export function engineOptions(
  flags: EngineFlags,
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
    idleTimeoutMs: parseIdleTimeout(flags['idle-timeout'] ?? env.HITCH_IDLE_TIMEOUT),
    log,
  };
}

// Where the engine reads and writes, and how long idle masters live: every setting can be
// given by flag or environment, so tests and headless users never touch the real ~/.ssh or
// app data unless they mean to.
import { join } from 'node:path';
import { userInfo } from 'node:os';
import type { EngineOptions } from '../engine';
import { osKeychain } from '../masters/keychain';
import type { Logger } from '../log';
import { defaultConfigPath } from './ssh-config';

export interface EngineFlags {
  'ssh-config'?: string | undefined;
  'data-dir'?: string | undefined;
  'known-hosts'?: string | undefined;
  ssh?: string | undefined;
  'idle-timeout'?: string | undefined;
  'runtime-dir'?: string | undefined;
}

/** The flags every entry point accepts, for node:util parseArgs. */
export const engineFlagSpec = {
  'ssh-config': { type: 'string' },
  'data-dir': { type: 'string' },
  'known-hosts': { type: 'string' },
  ssh: { type: 'string' },
  'idle-timeout': { type: 'string' },
  'runtime-dir': { type: 'string' },
} as const;

/** `--idle-timeout`: minutes a master without sessions stays up, or `never`. */
export function parseIdleTimeout(value: string | undefined): number | null | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'never') return null;
  const minutes = Number(value);
  if (!Number.isFinite(minutes) || minutes < 0) {
    throw new Error(`--idle-timeout: "${value}" is neither a number of minutes nor "never"`);
  }
  return minutes * 60_000;
}

export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CONFIG_HOME || join(userInfo().homedir, '.config'), 'hitch');
}

/**
 * Where the engine socket lives (main/transport/engine-socket.ts): the user's private runtime
 * directory ($XDG_RUNTIME_DIR/hitch), else `run` in the data directory. One engine per data
 * directory: an engine given a data directory of its own (a second profile, a test) gets the
 * socket beside it, so it neither uses nor blocks the user's usual engine.
 */
export function runtimeDirOf(flags: EngineFlags, env: NodeJS.ProcessEnv, dataDirDefault: string = defaultDataDir(env)): string {
  const explicit = flags['runtime-dir'] ?? env.HITCH_RUNTIME_DIR;
  if (explicit) return explicit;
  const dataDir = flags['data-dir'] ?? env.HITCH_DATA_DIR;
  if (dataDir) return join(dataDir, 'run');
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'hitch');
  return join(dataDirDefault, 'run');
}

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

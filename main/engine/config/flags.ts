// The flags and environment every entry point reads (the app, the web host, `hitch`), and
// where the engine socket lives: plain path arithmetic, kept apart from the engine's options so
// that a short `hitch` command loads nothing else.
import { join } from 'node:path';
import { userInfo } from 'node:os';

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

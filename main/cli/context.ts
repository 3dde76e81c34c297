// What every command needs: the parsed options, a connection to the running engine (started
// in the background with --start), typed calls that fail as one clear line, and output.
// The engine socket's code (node:net and more) loads on the first call, not with every
// command: `hitch exec` on a ready master may never need it (exec.ts).
import { openSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { Method, Params, Result } from '../../preload/api';
import { ApiError, HitchClient } from '../../preload/client';
import type { EngineFlags } from '../engine/config/flags';
import { ENGINE_NODE_FLAGS } from '../engine/node-flags';
import type { EngineConnection } from '../transport/engine-socket';
import type { CommandName, Output } from './schemas';

/** A failure to report as `hitch: MESSAGE` on stderr, exiting with `status`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly status = 1,
    /** The engine's error code, when the engine refused. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const USAGE_STATUS = 2;
/** Like ssh: `exec` and `shell` exit 255 for hitch's own failures (no engine, no connection). */
export const EXEC_FAILURE_STATUS = 255;

export interface CliOptions {
  json: boolean;
  /** Never ask a person: prompts are refused (cancelled). */
  batch: boolean;
  /** Start an engine in the background when none runs. */
  start: boolean;
  engineFlags: EngineFlags;
  runtimeDir: string;
}

export interface Context extends CliOptions {
  /** The engine's API, as the app's own windows have it; connected on first use. */
  client(): Promise<HitchClient>;
  /** A typed call whose failure is a CliError (one line, the engine's code). */
  call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>>;
  /** Prints a command's result: its JSON (checked against its schema) or the human text. */
  print<C extends CommandName>(command: C, value: Output<C>, human: (value: Output<C>) => string): Promise<void>;
  /** Stops reading the engine's messages until `resume` (our own output is full: flow control). */
  pause(): void;
  resume(): void;
  close(): void;
}

/** The engine flags as arguments again, for the engine --start launches. */
function flagArgs(flags: EngineFlags): string[] {
  return Object.entries(flags).flatMap(([name, value]) => (value === undefined ? [] : [`--${name}`, value]));
}

const START_TIMEOUT_MS = 15_000;

/** Starts `hitch daemon` detached, logging to the runtime directory, and waits for its socket. */
async function startInBackground(opts: CliOptions): Promise<EngineConnection> {
  const [{ spawn }, { connectEngineSocket, engineSocketPath, NoEngineError, privateRuntimeDir }] = await Promise.all([
    import('node:child_process'),
    import('../transport/engine-socket'),
  ]);
  const path = engineSocketPath(opts.runtimeDir);
  await privateRuntimeDir(opts.runtimeDir);
  const logPath = join(opts.runtimeDir, 'engine.log');
  const logFd = openSync(logPath, 'a', 0o600);
  const child = spawn(process.execPath, [...ENGINE_NODE_FLAGS, process.argv[1]!, 'daemon', ...flagArgs(opts.engineFlags)], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: process.env,
  });
  closeSync(logFd);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return await connectEngineSocket(path);
    } catch (err) {
      if (!(err instanceof NoEngineError)) throw new CliError((err as Error).message);
    }
    // It may have lost a race to another engine starting: that one is then used.
    if (exited !== null && exited !== 0) {
      const last = readFileSync(logPath, 'utf8').trim().split('\n').at(-1) ?? '';
      throw new CliError(`the engine did not start (see ${logPath}): ${last}`);
    }
    if (Date.now() > deadline) throw new CliError(`the engine did not start within ${START_TIMEOUT_MS / 1000} s (see ${logPath})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function createContext(opts: CliOptions): Context {
  let connection: Promise<EngineConnection> | null = null;
  const connect = async (): Promise<EngineConnection> => {
    const { connectEngineSocket, engineSocketPath, NoEngineError } = await import('../transport/engine-socket');
    return connectEngineSocket(engineSocketPath(opts.runtimeDir)).catch(async (err: unknown) => {
      if (!(err instanceof NoEngineError)) throw new CliError((err as Error).message);
      if (opts.start) return startInBackground(opts);
      throw new CliError(
        `no Hitch engine is running (nothing serves ${err.socketPath}). Start one with \`hitch daemon\` (or open the app, ` +
          'or `npm run web`), or add --start to start one in the background.',
      );
    });
  };
  const engine = (): Promise<EngineConnection> => (connection ??= connect());
  let client: Promise<HitchClient> | null = null;
  const clientOf = (): Promise<HitchClient> => (client ??= engine().then((conn) => new HitchClient(conn)));
  return {
    ...opts,
    client: clientOf,
    async call(method, params) {
      try {
        return await (await clientOf()).call(method, params);
      } catch (err) {
        if (err instanceof ApiError) throw new CliError(err.message, 1, err.info.code);
        throw err;
      }
    },
    async print(command, value, human) {
      // The schemas (and zod) load only for --json: a short command starts without them.
      if (opts.json) process.stdout.write(JSON.stringify((await import('./schemas')).outputSchemas[command].parse(value)) + '\n');
      else {
        const text = human(value);
        if (text !== '') process.stdout.write(text.endsWith('\n') ? text : text + '\n');
      }
    },
    pause() {
      void connection?.then((c) => c.pause(), () => undefined);
    },
    resume() {
      void connection?.then((c) => c.resume(), () => undefined);
    },
    close() {
      void connection?.then((c) => c.close(), () => undefined);
    },
  };
}

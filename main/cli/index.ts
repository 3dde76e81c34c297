// `hitch`: the running engine from the shell, over the engine socket (the same API contract as
// the app's window). Plain Node: never imports electron. Built to out/main/cli.js; bin/hitch.js
// runs it. Exit status 0 on success; otherwise one line on stderr and 1 (2 for a usage error;
// `exec` passes the remote status on and uses 255 for its own failures, as ssh does).
//
// Starting fast matters (scripts call `hitch exec` in loops): this file loads only what every
// command needs, and each command's module is loaded when it runs; the engine itself only
// for `daemon`.
import { parseArgs } from 'node:util';
import { engineFlagSpec, runtimeDirOf, type EngineFlags } from '../engine/config/flags';
import { CliError, createContext, EXEC_FAILURE_STATUS, USAGE_STATUS, type CliOptions, type Context } from './context';

export const USAGE = `Usage: hitch COMMAND [ARGS] [OPTIONS]

Commands:
  daemon                      run the engine without a window (serves the engine socket)
  ls                          hosts, masters (state, sessions n/limit) and sessions
  connect HOST                open the host's master connection
  disconnect HOST             close it (ends its sessions)
  exec HOST -- CMD...         run CMD over the master: output streamed, stdin passed
                              through, the remote exit status becomes hitch's
  ps HOST                     the host's remote processes, grouped by session
  kill HOST PID [--signal NAME] [--tree|--session] [--grace SECONDS]
                              signal a process of the tree (TERM unless --signal);
                              --grace: TERM, then KILL for what outlives SECONDS
  socket HOST                 the master's OpenSSH control socket (for ssh -S)
  shell HOST [--attach ID]    an interactive shell over the master, like ssh HOST; durable
                              where the host has tmux (it carries on after the network
                              drops); --attach rejoins a session or a shell left running
  sessions HOST               the host's sessions (id, kind, durable, state, pid, command),
                              and durable shells left running there
  bench HOST [--rounds N]     measure what multiplexing saves on this host
  forward HOST -L [BIND:]PORT:HOST:HOSTPORT | -R [BIND:]PORT:HOST:HOSTPORT | -D [BIND:]PORT
              [--save]        port forwards over the master, as ssh's -L/-R/-D (several
                              allowed); they stay in the engine; --save keeps them with
                              the host (set up again whenever its master connects)
  forward HOST --list         the host's forwards (id, kind, listen, target, state,
                              connections, bytes, saved, origin)
  forward HOST --cancel ID|-L SPEC...
                              end a forward, by id or by the spec it was opened with
  cp [-r] [--force|--resume] SRC... DST
                              copy files to or from a host over its master, like scp:
                              one side is HOST:PATH (HOST: alone is the login directory);
                              -r copies directories with everything in them (symlinks
                              skipped); an existing destination is replaced only with
                              --force (or asked about on a terminal); --resume goes on
                              from its end

Options:
  --json                      machine-readable output (one JSON object)
  --batch                     never ask (passwords, host keys): fail instead
  --start                     start an engine in the background if none runs
  --runtime-dir DIR           where the engine socket is (HITCH_RUNTIME_DIR;
                              default $XDG_RUNTIME_DIR/hitch, else DATA_DIR/run)
  --ssh-config FILE, --data-dir DIR, --known-hosts FILE, --ssh PATH,
  --idle-timeout MINUTES|never
                              engine settings, for daemon and --start (HITCH_* too)
`;

const optionSpec = {
  ...engineFlagSpec,
  json: { type: 'boolean' },
  batch: { type: 'boolean' },
  start: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  signal: { type: 'string', short: 's' },
  tree: { type: 'boolean' },
  session: { type: 'boolean' },
  grace: { type: 'string' },
  rounds: { type: 'string', short: 'n' },
  attach: { type: 'string' },
  L: { type: 'string', short: 'L', multiple: true },
  R: { type: 'string', short: 'R', multiple: true },
  D: { type: 'string', short: 'D', multiple: true },
  list: { type: 'boolean' },
  cancel: { type: 'boolean' },
  save: { type: 'boolean' },
  force: { type: 'boolean', short: 'f' },
  resume: { type: 'boolean' },
  recursive: { type: 'boolean', short: 'r' },
} as const;

type Values = {
  [K in keyof typeof optionSpec]?: (typeof optionSpec)[K] extends { multiple: true } ? string[] : (typeof optionSpec)[K]['type'] extends 'string' ? string : boolean;
};

/** Like ssh, `exec` and `shell` exit 255 for hitch's own failures: their other statuses are the remote command's. */
function asSshFailure(err: unknown): never {
  throw err instanceof CliError && err.status === 1 ? new CliError(err.message, EXEC_FAILURE_STATUS, err.code) : err;
}

/** Each command: its positionals and the options only it takes. */
const commands = (): Promise<typeof import('./commands')> => import('./commands');
const table: Record<string, { args: string[]; optionalArgs?: number; options?: (keyof Values)[]; run: (ctx: Context, args: string[], values: Values) => Promise<number> }> = {
  daemon: { args: [], run: async (ctx) => (await import('./daemon')).daemon(ctx) },
  ls: { args: [], run: async (ctx) => (await commands()).ls(ctx) },
  connect: { args: ['HOST'], run: async (ctx, [host]) => (await commands()).connect(ctx, host!) },
  disconnect: { args: ['HOST'], run: async (ctx, [host]) => (await commands()).disconnect(ctx, host!) },
  ps: { args: ['HOST'], run: async (ctx, [host]) => (await commands()).ps(ctx, host!) },
  kill: { args: ['HOST', 'PID'], options: ['signal', 'tree', 'session', 'grace'], run: async (ctx, [host, pid], v) => (await commands()).kill(ctx, host!, pid!, v) },
  socket: { args: ['HOST'], run: async (ctx, [host]) => (await commands()).socket(ctx, host!) },
  sessions: { args: ['HOST'], run: async (ctx, [host]) => (await commands()).sessions(ctx, host!) },
  shell: { args: ['HOST'], options: ['attach'], run: async (ctx, [host], v) => (await import('./shell')).shellCommand(ctx, host!, v.attach ?? null).catch(asSshFailure) },
  bench: { args: ['HOST'], options: ['rounds'], run: async (ctx, [host], v) => (await commands()).bench(ctx, host!, v) },
  // `--cancel ID`: the id is the optional second positional.
  forward: { args: ['HOST'], optionalArgs: 1, options: ['L', 'R', 'D', 'list', 'cancel', 'save'], run: async (ctx, [host, id], v) => (await commands()).forward(ctx, host!, id, v) },
};

const COMMAND_OPTIONS: (keyof Values)[] = ['signal', 'tree', 'session', 'grace', 'rounds', 'attach', 'L', 'R', 'D', 'list', 'cancel', 'save', 'force', 'resume', 'recursive'];

function usageError(message: string): CliError {
  return new CliError(`${message} (hitch --help for usage)`, USAGE_STATUS);
}

/** Runs one invocation; resolves with the exit status. */
export async function run(argv: string[]): Promise<number> {
  // `exec HOST -- CMD...`: everything after `--` is the remote command, untouched.
  const dashes = argv.indexOf('--');
  // `--cancel=ID` as well as `--cancel ID` (a flag, with the id as a positional).
  const own = (dashes === -1 ? argv : argv.slice(0, dashes)).flatMap((a) => (a.startsWith('--cancel=') ? ['--cancel', a.slice('--cancel='.length)] : [a]));
  const remote = dashes === -1 ? null : argv.slice(dashes + 1);

  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: own, options: optionSpec, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] });
  } catch (err) {
    const hint = own[0] === 'exec' && remote === null ? '; put the remote command after --: hitch exec HOST -- CMD...' : '';
    throw usageError((err as Error).message.split('\n')[0]! + hint);
  }
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? USAGE_STATUS : 0;
  }

  const engineFlags: EngineFlags = Object.fromEntries(Object.keys(engineFlagSpec).map((k) => [k, values[k as keyof Values] as string | undefined]));
  const opts: CliOptions = {
    json: values.json ?? false,
    batch: values.batch ?? false,
    start: values.start ?? false,
    engineFlags,
    runtimeDir: runtimeDirOf(engineFlags, process.env),
  };
  const ctx = createContext(opts);
  try {
    if (command === 'exec') {
      const [host, ...rest] = args;
      const words = remote ?? rest;
      if (!host || words.length === 0) throw usageError('exec needs a host and a command: hitch exec HOST -- CMD...');
      if (remote && rest.length > 0) throw usageError(`unexpected "${rest[0]}" before --`);
      for (const name of COMMAND_OPTIONS) if (values[name] !== undefined) throw usageError(`--${name} does not apply to exec`);
      // Joined with spaces for the remote shell, exactly as `ssh HOST CMD...` does.
      return await (await import('./exec')).execCommand(ctx, host, words.join(' ')).catch(asSshFailure);
    }
    if (command === 'cp') {
      if (remote !== null) throw usageError('cp takes no --');
      for (const name of COMMAND_OPTIONS) if (values[name] !== undefined && name !== 'force' && name !== 'resume' && name !== 'recursive') throw usageError(`--${name} does not apply to cp`);
      return await (await import('./cp')).cpCommand(ctx, args, { force: values.force, resume: values.resume, recursive: values.recursive });
    }
    const spec = table[command];
    if (!spec) throw usageError(`unknown command "${command}"`);
    if (remote !== null) throw usageError(`${command} takes no --`);
    if (args.length < spec.args.length || args.length > spec.args.length + (spec.optionalArgs ?? 0)) throw usageError(`usage: hitch ${command}${spec.args.map((a) => ' ' + a).join('')}`);
    for (const name of COMMAND_OPTIONS) {
      if (values[name] !== undefined && !spec.options?.includes(name)) throw usageError(`${name.length === 1 ? '-' : '--'}${name} does not apply to ${command}`);
    }
    if (command === 'daemon' && values.start) throw usageError('--start does not apply to daemon');
    return await spec.run(ctx, args, values);
  } finally {
    ctx.close();
  }
}

/** The one line a failure prints; the status hitch exits with. */
export function failure(err: unknown): { line: string; status: number } {
  if (err instanceof CliError) return { line: `hitch: ${err.message}`, status: err.status };
  return { line: `hitch: ${err instanceof Error ? err.message : String(err)}`, status: 1 };
}

/**
 * Which of process.stdout and process.stderr have been made. Node makes each on first use, and
 * that costs 3-5 ms (a pipe's brings in node:net): a command that wrote nothing itself, such
 * as `hitch exec` lending its descriptors to the master, leaves without making them only to
 * wait for them.
 */
function madeStreams(): ReadonlySet<'stdout' | 'stderr'> {
  const made = new Set<'stdout' | 'stderr'>();
  for (const name of ['stdout', 'stderr'] as const) {
    const own = Object.getOwnPropertyDescriptor(process, name);
    if (!own?.get || !own.configurable) {
      made.add(name); // not a lazy getter here: assume made
      continue;
    }
    const make = own.get;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: own.enumerable,
      get: () => (made.add(name), make.call(process)),
    });
  }
  return made;
}

async function main(): Promise<void> {
  const made = madeStreams();
  let status: number;
  try {
    status = await run(process.argv.slice(2));
  } catch (err) {
    const { line, status: s } = failure(err);
    process.stderr.write(line.replace(/\s*\n\s*/g, ' ') + '\n');
    status = s;
  }
  // Let stdout and stderr drain (a pipe may be slow), then leave even if stdin is still open.
  // Either may be shut already: `hitch exec` lends them to the engine, which shuts a socket
  // (as OpenSSH's master does) when the command's output ends.
  const drained = (out: NodeJS.WriteStream): Promise<void> =>
    new Promise<void>((resolve) => {
      out.once('error', () => resolve());
      out.write('', () => resolve());
    });
  if (made.has('stdout')) await drained(process.stdout);
  if (made.has('stderr')) await drained(process.stderr);
  process.exit(status);
}

void main();

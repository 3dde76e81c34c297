// `hitch exec HOST -- CMD...`: runs a command over the host's master the way `ssh HOST CMD`
// would: stdout and stderr byte for byte on their own streams, stdin passed through (its end
// forwarded), and the command's exit status as hitch's own (128 + n for signal n). Once the
// master is connected (asking for whatever its login needs), the command runs as `ssh -S`
// would, over the master's control socket with this process's descriptors (mux-exec.ts). A
// master already ready is reached through the link the engine keeps under the host's alias
// (transport/master-links.ts), without a word with the engine first. Where none of that can
// be (--json, no control socket, no native helper), through the engine socket: the session is
// opened raw, so binary output survives, and removed at the end.
import { constants } from 'node:os';
import type { SessionView } from '../../preload/api';
import { signalExitStatus } from '../engine/exit-status';
import { CliError, EXEC_FAILURE_STATUS, type Context } from './context';
import { masterLinkPath } from '../transport/master-link-path';
import { execOverControlSocket, NoControlSocket, type MuxOutcome } from './mux-exec';
import { mastersOf, withPrompts } from './prompts';

/**
 * Output waiting for our stdout past which the engine's messages wait too (flow control). Not
 * the stream's own 16 KiB mark: stopping and starting the engine for every packet would
 * throttle a fast reader.
 */
const OUTPUT_HIGH_WATER = 1 << 20;
/** Input is sent in pieces that fit one `session.write` (64 KiB of base64). */
const STDIN_CHUNK = 48 * 1024;

/** The exit status a shell would report for the session's end. */
export function exitStatusOf(session: SessionView): { status: number; problem: string | null } {
  if (session.exitSignal) {
    const status = signalExitStatus(session.exitSignal);
    return { status: status ?? 128, problem: status === null ? `killed by an unknown signal ${session.exitSignal}` : null };
  }
  if (session.exitCode !== null) return { status: session.exitCode & 0xff, problem: null };
  if (session.state === 'disconnected') return { status: EXEC_FAILURE_STATUS, problem: 'the connection dropped; the command may still be running' };
  return { status: EXEC_FAILURE_STATUS, problem: 'the command ended without an exit status' };
}

export async function execCommand(ctx: Context, host: string, command: string): Promise<number> {
  // --json gathers the output into one document: it comes through the engine, as events.
  if (ctx.json) return execThroughEngine(ctx, host, command);

  // A ready master's socket, linked under the host's alias by the engine: used at once. Not
  // there or not this user's: the engine is asked below. Once the session was asked for, a
  // refusal is final, as below: the command may have started (the master dropping as it was
  // asked), and the stdin it was given has been read.
  const link = masterLinkPath(ctx.runtimeDir, host);
  const run = link === null ? null : await overSocket(link, command, true);
  return run === null ? execOverMaster(ctx, host, command) : finished(host, run);
}

/** `hitch exec` with the engine's help: the master connected (logging in if it must), then its socket. */
async function execOverMaster(ctx: Context, host: string, command: string): Promise<number> {
  const asked = ctx.call('state.get', {});
  const connecting = ctx.call('master.connect', { hostId: host });
  connecting.catch(() => undefined); // awaited below, through withPrompts
  const state = await asked;
  const master = await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => connecting);
  // No socket, or no descriptor passing here (the native helper did not load): through the engine.
  const run = master.controlPath === null ? null : await overSocket(master.controlPath, command, false);
  return run === null ? execThroughEngine(ctx, host, command) : finished(host, run);
}

interface SocketRun extends MuxOutcome {
  /** Hitch itself was interrupted: the engine hung the command up as the connection closed. */
  signalled: NodeJS.Signals | null;
}

/**
 * Runs the command over a control socket, SIGINT, SIGTERM and SIGHUP ending it meanwhile;
 * null when the socket cannot be used (the command is then run another way).
 */
async function overSocket(path: string, command: string, linked: boolean): Promise<SocketRun | null> {
  let signalled: NodeJS.Signals | null = null;
  let wake!: () => void;
  const interrupted = new Promise<void>((resolve) => (wake = resolve));
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, () => ((signalled ??= signal), wake())] as const);
  for (const [signal, handler] of handlers) process.once(signal, handler);
  try {
    return { ...(await execOverControlSocket(path, command, interrupted, linked)), signalled };
  } catch (err) {
    if (err instanceof NoControlSocket) return null;
    throw err;
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}

/** hitch's exit status for a command run over a control socket (its refusal is thrown). */
function finished(host: string, run: SocketRun): number {
  if (run.signalled !== null) return 128 + (constants.signals[run.signalled] ?? 0);
  if (run.refused !== null) throw new CliError(`${host}: ${run.refused}`, EXEC_FAILURE_STATUS);
  if (run.status !== null) return run.status & 0xff;
  process.stderr.write(`hitch: ${host}: the command ended without an exit status (the connection dropped?); it may still be running\n`);
  return EXEC_FAILURE_STATUS;
}

/** `hitch exec` through the engine socket: output as events, written out here. */
async function execThroughEngine(ctx: Context, host: string, command: string): Promise<number> {
  const client = await ctx.client();
  // Asked at once, together with the run below: the catalog says which prompts are this
  // host's (a prompt can only come after the reply, as the login needs the network).
  const asked = ctx.call('state.get', {});

  // The session streams to this client alone, from its first byte, right after the reply
  // naming it; this client attaches to nothing else, so what arrives before the reply is read
  // (its continuation runs after the lines that came with it) is that session's too.
  let sessionId: string | null = null;
  const ours = (id: string): boolean => sessionId === null || id === sessionId;
  const collected = { stdout: [] as Uint8Array[], stderr: [] as Uint8Array[] };
  /** Our own outputs that are full now: the engine's messages wait until they drain. */
  const full = new Set<NodeJS.WriteStream>();
  let resolveEnd!: (session: SessionView) => void;
  const ended = new Promise<SessionView>((resolve) => (resolveEnd = resolve));
  const offData = client.on('session.data', (data) => {
    if (!ours(data.sessionId)) return;
    // Bytes as the engine socket's binary frames bring them; base64 from an engine that sends JSON only.
    const bytes = typeof data.data !== 'string' ? data.data : Buffer.from(data.data, data.encoding === 'base64' ? 'base64' : 'utf8');
    if (ctx.json) collected[data.stream].push(bytes);
    else {
      // A slow reader of our output (a pipe, a disk) holds the engine's messages, and so the
      // command, instead of our memory filling up.
      const out = data.stream === 'stderr' ? process.stderr : process.stdout;
      if (!out.write(bytes) && out.writableLength > OUTPUT_HIGH_WATER && !full.has(out)) {
        if (full.size === 0) ctx.pause();
        full.add(out);
        out.once('drain', () => {
          full.delete(out);
          if (full.size === 0) ctx.resume();
        });
      }
    }
  });
  const offChanged = client.on('session.changed', (view) => {
    if (ours(view.id) && view.state !== 'open') resolveEnd(view);
  });
  const off = (): void => (offData(), offChanged());

  let session: SessionView;
  try {
    const opening = ctx.call('session.exec', { hostId: host, command, cols: 80, rows: 24, pty: false, raw: true });
    opening.catch(() => undefined); // awaited below, through withPrompts
    const state = await asked;
    session = await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => opening);
  } catch (err) {
    off();
    throw err;
  }
  sessionId = session.id;
  const call = (method: 'session.write' | 'session.eof' | 'session.close', params: { sessionId: string; data?: string; encoding?: 'base64' }): Promise<boolean> =>
    client.call(method, params as never).then(
      () => true,
      () => false,
    );

  // Hitch itself interrupted: hang the remote command up rather than leave it running.
  const interrupted = (signal: NodeJS.Signals): void => {
    void call('session.close', { sessionId: session.id }).finally(() => process.exit(128 + (constants.signals[signal] ?? 0)));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, interrupted);
  // A reader that went away (`hitch exec … | head`): stop like a shell pipeline does.
  process.stdout.on('error', () => interrupted('SIGPIPE'));

  void (async () => {
    try {
      for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
        for (let i = 0; i < chunk.length; i += STDIN_CHUNK) {
          const data = chunk.subarray(i, i + STDIN_CHUNK).toString('base64');
          if (!(await call('session.write', { sessionId: session.id, data, encoding: 'base64' }))) return;
        }
      }
      await call('session.eof', { sessionId: session.id });
    } catch {
      // stdin unreadable: the command simply gets no (more) input
    }
  })();

  const end = await ended;
  off();
  // Nothing is left to show for the finished session: it is let go without waiting for the
  // answer (the engine lets it go as this client leaves in any case).
  void call('session.close', { sessionId: session.id });
  const { status, problem } = exitStatusOf(end);
  if (ctx.json) {
    await ctx.print(
      'exec',
      {
        host,
        sessionId: session.id,
        command,
        exitCode: end.exitCode,
        exitSignal: end.exitSignal,
        status,
        stdout: Buffer.concat(collected.stdout).toString('utf8'),
        stderr: Buffer.concat(collected.stderr).toString('utf8'),
      },
      () => '',
    );
  }
  if (problem) process.stderr.write(`hitch: ${host}: ${problem}\n`);
  return status;
}

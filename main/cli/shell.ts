// `hitch shell HOST`: an interactive terminal like `ssh HOST`, riding the host's master.
// The shell is durable where the host has tmux: when the network drops, one "reconnecting…"
// line, and it carries on where it was once the master is back (the screen redrawn), as mosh
// does. `--attach ID` rejoins a session of the engine (`s12`) or a durable shell left running
// on the host (its tmux name, as `hitch sessions HOST` lists it).
import type { ReadStream } from 'node:tty';
import type { MasterView, SessionView } from '../../preload/api';
import { CliError, EXEC_FAILURE_STATUS, type Context } from './context';
import { mastersOf, withPrompts } from './prompts';
import { safeForTerminal } from './terminal-text';

/** Input is sent in pieces that fit one `session.write` (64 KiB of base64). */
const STDIN_CHUNK = 48 * 1024;

export async function shellCommand(ctx: Context, host: string, attach: string | null): Promise<number> {
  const client = await ctx.client();
  // Watched: when logging in again needs a person, this terminal offers to do it.
  const state = await ctx.call('state.get', { watch: true });
  const size = (): { cols: number; rows: number } => ({
    cols: Math.min(1000, Math.max(2, process.stdout.columns || 80)),
    rows: Math.min(1000, Math.max(1, process.stdout.rows || 24)),
  });

  let sessionId: string | null = null;
  let announced = false;
  /** Output is shown from the scrollback of an attach on: what came before is in it. */
  let streaming = attach === null;
  let resolveEnd!: (view: SessionView) => void;
  const ended = new Promise<SessionView>((resolve) => (resolveEnd = resolve));
  // This client attaches to one session only: what arrives is that session's.
  const ours = (id: string): boolean => sessionId === null || id === sessionId;
  const offData = client.on('session.data', (p) => {
    if (!ours(p.sessionId) || !streaming) return;
    if (p.reset) process.stdout.write('\x1bc'); // redrawn after a reconnect: start from a clean screen
    process.stdout.write(p.data);
  });
  const offChanged = client.on('session.changed', (view) => {
    if (!ours(view.id)) return;
    if (view.reconnecting && !announced) {
      announced = true;
      process.stderr.write('\r\nhitch: connection lost; reconnecting…\r\n');
    } else if (!view.reconnecting) announced = false;
    offerLogin();
    if (view.state !== 'open') resolveEnd(view);
  });
  /** Set while the master waits for a person to log in again: Enter starts that login here. */
  let loginNeeded = false;
  let master: MasterView | undefined;
  const offerLogin = (): void => {
    const needed = announced && master?.state === 'failed';
    if (needed && !loginNeeded) {
      process.stderr.write(`\r\nhitch: ${safeForTerminal(master?.error?.message ?? `${host} is not connected.`)}\r\nhitch: the shell keeps running on ${host}; press Enter to log in again.\r\n`);
    }
    loginNeeded = needed;
  };
  const offMaster = client.on('master.changed', (view) => {
    if (view.id !== session?.masterId) return;
    master = view;
    offerLogin();
  });

  let session: SessionView | undefined;
  try {
    if (attach === null) {
      session = await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => ctx.call('session.open', { hostId: host, ...size() }));
    } else {
      if (/^hitch-[0-9a-f]{16}$/.test(attach)) {
        session = await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => ctx.call('session.reopen', { hostId: host, name: attach, ...size() }));
      } else {
        const known = state.sessions.find((s) => s.id === attach && s.hostId === host);
        if (!known) throw new CliError(`${host} has no session ${attach} (hitch sessions ${host} lists them)`);
        session = known;
      }
      sessionId = session.id;
      // The screen as it is, then what follows it.
      const scrollback = await ctx.call('session.attach', { sessionId: session.id });
      process.stdout.write('\x1bc' + scrollback.data);
      streaming = true;
      await ctx.call('session.resize', { sessionId: session.id, ...size() });
    }
  } catch (err) {
    offData();
    offChanged();
    offMaster();
    throw err;
  }
  const shell: SessionView = session;
  sessionId = shell.id;
  if (!shell.durable && shell.notDurable && attach === null) process.stderr.write(`hitch: this shell is not durable: ${shell.notDurable}\r\n`);

  const stdin = process.stdin as ReadStream;
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  if (raw) stdin.setRawMode(true);
  const onData = (chunk: Buffer): void => {
    if (loginNeeded) {
      if (chunk.includes(13) || chunk.includes(10)) void logInAgain();
      return;
    }
    for (let i = 0; i < chunk.length; i += STDIN_CHUNK) {
      const data = chunk.subarray(i, i + STDIN_CHUNK).toString('base64');
      void client.call('session.write', { sessionId: shell.id, data, encoding: 'base64' }).catch(() => undefined);
    }
  };
  stdin.on('data', onData);
  stdin.resume();
  /** The person logs in on this terminal (the prompts take it meanwhile); the shell then rejoins. */
  const logInAgain = async (): Promise<void> => {
    loginNeeded = false;
    stdin.off('data', onData);
    if (raw) stdin.setRawMode(false);
    try {
      await withPrompts(ctx, mastersOf(state.catalog, host), [], () => ctx.call('master.connect', { hostId: host }));
      process.stderr.write(`hitch: logged in; rejoining the shell…\r\n`);
    } catch (err) {
      // The master's failure has said "press Enter" again already, or says it now.
      if (!loginNeeded) process.stderr.write(`hitch: ${safeForTerminal((err as Error).message)}\r\nhitch: press Enter to try again.\r\n`);
      loginNeeded = true;
    }
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  };
  const onResize = (): void => void client.call('session.resize', { sessionId: shell.id, ...size() }).catch(() => undefined);
  process.stdout.on('resize', onResize);

  const end = await ended;
  stdin.off('data', onData);
  stdin.pause();
  if (raw) stdin.setRawMode(false);
  process.stdout.off('resize', onResize);
  offData();
  offChanged();
  offMaster();
  // The tab's record of it is not needed: a terminal that ended is gone.
  await client.call('session.close', { sessionId: shell.id }).catch(() => undefined);
  if (end.state === 'disconnected') {
    process.stderr.write(`\r\nhitch: ${host}: the connection dropped and the shell could not be kept\r\n`);
    return EXEC_FAILURE_STATUS;
  }
  return end.exitCode ?? 0;
}

// Passenger mode: a stock client's stdin, stdout and stderr (passed over the socket) relayed to
// and from a channel on the master. NEW_SESSION opens a session channel with exactly the
// requests the client asked for (pty with its terminal's modes and size, env, then shell,
// exec or subsystem); NEW_STDIO_FWD (ssh -W) opens a direct-tcpip channel. The client waits
// on the control connection for the exit status; the master closes it when the channel ends.
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import { requestEndOfWrite, requestEnv, requestExec, requestPty, requestShell, requestSubsystem } from '../masters/ssh2-channels';
import { signalExitStatus } from '../exit-status';
import { NO_ESCAPE, PORT_STREAMLOCAL, reply } from './frames';
import type { ExternalSessionSpec } from './master-port';
import type { ControlConnection } from './connection';
import { closeQuietly, finishOutput, inputStream, openStreams, outputStream, relay } from './streams';
import { watchWindowSize, type WindowSize } from './winch';

export interface NewSessionRequest {
  wantTty: boolean;
  wantX11: boolean;
  wantAgent: boolean;
  subsystem: boolean;
  /** 0xffffffff: none. */
  escapeChar: number;
  term: string;
  command: string;
  /** `NAME=value` entries the client chose to send (its SendEnv and SetEnv). */
  env: string[];
}


/** What the log may say of a command line: the program's name and the line's length, never its arguments. */
export function commandSummary(command: string | null): { program: string | null; commandBytes: number } {
  if (command === null) return { program: null, commandBytes: 0 };
  const first = command.trim().split(/\s+/, 1)[0] ?? '';
  const program = (first.split('/').pop() ?? '').replace(/[^\w.+-]/g, '').slice(0, 32);
  return { program: program || null, commandBytes: Buffer.byteLength(command) };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Resolves once a readable side has ended (or at once if it already has). */
function ended(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
}

export async function relayNewSession(client: ControlConnection, rid: number, req: NewSessionRequest, fds: [number, number, number]): Promise<void> {
  const { master, log, unix } = client.server;
  const ctx = { master: master.id, client: client.number };
  if (req.wantX11) log.info('control socket: X11 forwarding asked for, not offered by Hitch', ctx);
  // Hitch has no per-host agent forwarding setting yet, so it is never enabled for a host.
  if (req.wantAgent) log.info('control socket: agent forwarding asked for and refused: not enabled for this host in Hitch', ctx);

  let streams: [Readable, Writable, Writable];
  try {
    const nb = unix.native.setNonBlocking;
    streams = openStreams<Readable | Writable>(fds, [(fd) => inputStream(fd, nb), (fd) => outputStream(fd, nb), (fd) => outputStream(fd, nb)]) as [Readable, Writable, Writable];
  } catch (err) {
    log.warn('control socket: unusable file descriptors', { ...ctx, error: errorMessage(err) });
    client.send(reply.failure(rid, `unusable file descriptors: ${errorMessage(err)}`));
    return;
  }
  const [input, output, errOutput] = streams;
  const discard = (): void => {
    input.destroy();
    output.destroy();
    errOutput.destroy();
  };
  for (const s of streams) s.on('error', (err: Error) => log.debug('control socket: client descriptor error', { ...ctx, error: err.message }));

  // The client's terminal as it is now, before the client puts it in raw mode (after SESSION_OPENED).
  let size: WindowSize = { cols: 80, rows: 24, width: 0, height: 0 };
  let modes: Buffer | null = null;
  if (req.wantTty) {
    const now = unix.native.windowSize(fds[0]);
    if (now && now.cols > 0 && now.rows > 0) size = now;
    modes = unix.native.terminalModes(fds[0]);
  }
  const env: [string, string][] = [];
  for (const entry of req.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.push([entry.slice(0, eq), entry.slice(eq + 1)]);
  }

  let ptyRefused = false;
  const spec: ExternalSessionSpec = {
    kind: req.subsystem || req.command !== '' ? 'exec' : 'shell',
    command: req.subsystem ? `${req.command} (subsystem)` : req.command || null,
    hitchRun: client.exitSignals,
    // Pipelined as OpenSSH does: the requests go out together and are answered in order.
    async setup(channel) {
      const replies: Promise<void>[] = [];
      if (req.wantTty) {
        const pty = { term: req.term || 'vt100', cols: size.cols, rows: size.rows, modes };
        replies.push(requestPty(channel, pty).catch(() => void (ptyRefused = true)));
      }
      for (const [name, value] of env) requestEnv(channel, name, value);
      if (req.subsystem) replies.push(requestSubsystem(channel, req.command));
      else if (req.command !== '') replies.push(requestExec(channel, req.command));
      else replies.push(requestShell(channel));
      await Promise.all(replies);
    },
  };

  let opened: Awaited<ReturnType<typeof master.openSession>>;
  try {
    opened = await master.openSession(spec);
  } catch (err) {
    discard();
    log.warn('control socket: session refused', { ...ctx, error: errorMessage(err) });
    client.send(reply.failure(rid, `Session open refused by peer: ${errorMessage(err)}`));
    return;
  }
  const { channel, session } = opened;
  channel.on('error', (err: Error) => log.debug('control socket: session channel error', { ...ctx, error: err.message }));
  if (client.state !== 'ready') {
    // The client went away while the session was being opened.
    session.close();
    discard();
    return;
  }

  const number = client.server.sessionNumber();
  client.state = 'passenger';
  client.send(reply.sessionOpened(rid, number));
  if (ptyRefused) {
    log.warn('control socket: the server refused a pty', ctx);
    client.send(reply.ttyAllocFail(number));
  }
  // The command line may carry secrets (tokens, passwords on a command line): only its program is logged.
  log.info('control socket: session started', { ...ctx, session: session.id, tty: req.wantTty, ...commandSummary(spec.command) });

  let exitStatus: number | null = null;
  // On exit-signal OpenSSH's master sends no exit message: the client then exits with 255.
  // A client that asked (`hitch exec`) hears 128 + the signal's number, as from a shell.
  const exited = (code: number | null | undefined, signal: string | undefined): void => {
    if (exitStatus !== null) return;
    if (typeof code === 'number') exitStatus = code >>> 0;
    else if (signal && client.exitSignals) exitStatus = signalExitStatus(signal);
  };
  channel.on('exit', (code: number | null, signal?: string) => exited(code, signal));

  const source = req.wantTty && req.escapeChar !== NO_ESCAPE ? escapeFilter(input, req.escapeChar & 0xff, () => session.close()) : input;
  // The client's stdin ended (maybe while the channel was opening): EOF to the remote side.
  void ended(source).then(() => channel.end());
  source.pipe(channel, { end: false });
  // The reader of stdout went away (`… | head -1`): sshd closes the command's stdout, which
  // then dies of SIGPIPE as in a local pipeline (OpenSSH's master does the same).
  relay(channel, output, () => requestEndOfWrite(channel));
  relay(channel.stderr, errOutput);

  const unwatch =
    req.wantTty && !ptyRefused
      ? watchWindowSize({ read: () => unix.native.windowSize(fds[0]), apply: (s) => channel.setWindow(s.rows, s.cols, s.height, s.width) }, size)
      : () => undefined;

  // The client was killed or closed the connection: its descriptors are let go at once (as
  // OpenSSH's master does), and the session ends as a closed tab would.
  client.onClose(() => {
    if (session.state !== 'open') return;
    log.info('control socket: client left, closing its session', { ...ctx, session: session.id });
    unwatch();
    source.unpipe(channel);
    channel.unpipe(output);
    channel.stderr.unpipe(errOutput);
    // Whatever still arrives is dropped, so that the channel can end and close.
    channel.resume();
    channel.stderr.resume();
    for (const s of streams) s.destroy();
    session.close();
  });

  await Promise.all([
    new Promise<void>((resolve) =>
      channel.once('close', (code?: number | null, signal?: string) => {
        // ssh2 repeats how it ended here: it may have come before the listener above was added.
        exited(code, signal);
        resolve();
      }),
    ),
    ended(channel.stderr),
  ]);
  unwatch();
  source.unpipe(channel);
  input.destroy();
  await Promise.all([finishOutput(output), finishOutput(errOutput)]);
  if (exitStatus !== null) client.send(reply.exitMessage(number, exitStatus));
  client.close(null);
}

/**
 * The escape character of a stock client's terminal session, which the master handles in mux
 * mode: `~.` after a newline ends the session, `~~` sends one `~`. Other escapes pass through.
 */
function escapeFilter(input: Readable, escape: number, disconnect: () => void): Readable {
  let atLineStart = true;
  let pendingEscape = false;
  const out = new PassThrough();
  input.on('data', (chunk: Buffer) => {
    const kept: number[] = [];
    for (const byte of chunk) {
      if (pendingEscape) {
        pendingEscape = false;
        if (byte === 0x2e) {
          disconnect();
          return;
        }
        if (byte !== escape) kept.push(escape);
        kept.push(byte);
        atLineStart = byte === 0x0d || byte === 0x0a;
        continue;
      }
      if (atLineStart && byte === escape) {
        pendingEscape = true;
        continue;
      }
      kept.push(byte);
      atLineStart = byte === 0x0d || byte === 0x0a;
    }
    if (kept.length > 0 && !out.write(Buffer.from(kept))) {
      input.pause();
      out.once('drain', () => input.resume());
    }
  });
  input.on('end', () => out.end());
  input.on('error', () => out.end());
  return out;
}

export async function relayStdioForward(client: ControlConnection, rid: number, host: string, port: number, fds: [number, number]): Promise<void> {
  const { master, log, unix } = client.server;
  const ctx = { master: master.id, client: client.number, to: `${host}:${port}` };
  if (port === PORT_STREAMLOCAL) {
    fds.forEach(closeQuietly);
    client.send(reply.failure(rid, 'forwarding stdio to a Unix-domain socket is not supported by Hitch'));
    return;
  }
  let input: Readable;
  let output: Writable;
  try {
    const nb = unix.native.setNonBlocking;
    [input, output] = openStreams<Readable | Writable>(fds, [(fd) => inputStream(fd, nb), (fd) => outputStream(fd, nb)]) as [Readable, Writable];
  } catch (err) {
    client.send(reply.failure(rid, `unusable file descriptors: ${errorMessage(err)}`));
    return;
  }
  input.on('error', () => undefined);
  output.on('error', () => undefined);

  let channel: ClientChannel;
  master.retain();
  try {
    channel = await master.forwardOut(host, port);
  } catch (err) {
    master.release();
    input.destroy();
    output.destroy();
    log.warn('control socket: stdio forward refused', { ...ctx, error: errorMessage(err) });
    client.send(reply.failure(rid, errorMessage(err)));
    return;
  }
  channel.on('error', () => undefined);
  if (client.state !== 'ready') {
    master.release();
    channel.close();
    input.destroy();
    output.destroy();
    return;
  }
  client.state = 'passenger';
  client.send(reply.sessionOpened(rid, client.server.sessionNumber()));
  log.info('control socket: stdio forward started (ssh -W)', ctx);

  void ended(input).then(() => channel.end());
  input.pipe(channel, { end: false });
  relay(channel, output);
  client.onClose(() => channel.close());

  await new Promise((resolve) => channel.once('close', resolve));
  master.release();
  input.unpipe(channel);
  input.destroy();
  await finishOutput(output);
  client.close(null);
}

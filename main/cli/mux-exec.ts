// `hitch exec` the way `ssh -S` runs a command: over the master's control socket (OpenSSH's
// multiplexing protocol, as Hitch serves it), handing the engine this process's stdin, stdout
// and stderr. The command's output then goes from the SSH channel straight to where it is
// going (a pipe, a file, the terminal), not through this process, which only waits for the
// exit status: as fast as OpenSSH's own `ssh -S`, and nothing to copy here.
import { lstatSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXIT_SIGNAL_EXTENSION, FrameParser, MessageReader, MessageWriter, MSG, MUX_VERSION, NO_ESCAPE, type Frame } from '../engine/control-socket/frames';
import { UnixConnection } from '../native/unix-socket';
import { loadUnix } from '../native/unix';

/** Raised when the control socket cannot be used at all: the caller runs the command another way. */
export class NoControlSocket extends Error {
  override name = 'NoControlSocket';
}

/** How the command ended: its exit status, or why there is none (the connection dropped). */
export interface MuxOutcome {
  status: number | null;
  /** Set when the engine refused the session: nothing ran. */
  refused: string | null;
}

const REQUEST_ID = 1;

/**
 * A socket found through a link in the runtime directory (transport/master-links.ts) rather
 * than named by the engine: used only if the link's directory and the runtime directory are
 * this user's alone and the socket is this user's (whoever serves it is checked after
 * connecting). Synchronous: a short command starts no thread pool for three stats.
 */
function checkLinkedSocket(path: string): void {
  const uid = process.getuid?.();
  if (uid === undefined) throw new NoControlSocket('no user ids here');
  let socket;
  try {
    socket = statSync(path);
  } catch (err) {
    throw new NoControlSocket((err as Error).message); // no link: the master is not ready
  }
  // The links' directory and the runtime directory holding it.
  for (let dir = dirname(path), i = 0; i < 2; dir = dirname(dir), i++) {
    const st = lstatSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) throw new NoControlSocket(`${dir} is not private to this user`);
  }
  if (!socket.isSocket() || socket.uid !== uid) throw new NoControlSocket(`${path} is not a socket of this user`);
}

/**
 * Runs `command` as a session of the master serving `controlPath`, with this process's
 * descriptors 0, 1 and 2 as its stdin, stdout and stderr. `interrupted` ends the session (the
 * engine hangs the command up, as when a client goes away). Throws NoControlSocket when the
 * socket cannot be reached or the native helper is missing. `linked`: the path is a link
 * found in the runtime directory, not one the engine named: it and whoever serves it are
 * checked to be this user's before anything is sent.
 */
export async function execOverControlSocket(controlPath: string, command: string, interrupted: Promise<void>, linked = false): Promise<MuxOutcome> {
  if (linked) checkLinkedSocket(controlPath);
  let conn: UnixConnection | null = null;
  try {
    const unix = await loadUnix();
    conn = UnixConnection.connect(unix, controlPath);
    if (linked && unix.native.peerCredentials(conn.fd).uid !== process.getuid?.()) throw new Error(`${controlPath} is served by another user`);
  } catch (err) {
    conn?.destroy();
    throw new NoControlSocket((err as Error).message);
  }
  const parser = new FrameParser();
  /** The session was asked for: from then on, a failure is the command's, never a reason to run it again another way. */
  let requested = false;
  return new Promise<MuxOutcome>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: MuxOutcome | Error): void => {
      if (settled) return;
      settled = true;
      conn.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const onFrame = (frame: Frame): void => {
      const msg = new MessageReader(frame.body);
      switch (frame.type) {
        case MSG.HELLO: {
          // The master speaks first; then our HELLO, the session, and our three descriptors,
          // each beside one byte of its own, as OpenSSH's client passes them.
          conn.write(new MessageWriter(MSG.HELLO).u32(MUX_VERSION).string(EXIT_SIGNAL_EXTENSION).string('').frame());
          const session = new MessageWriter(MSG.C_NEW_SESSION).u32(REQUEST_ID).string('');
          session.u32(0).u32(0).u32(0).u32(0).u32(NO_ESCAPE).string('').string(command);
          conn.write(session.frame());
          for (const fd of [0, 1, 2]) conn.write(Buffer.from([0]), [fd]);
          requested = true;
          return;
        }
        case MSG.S_FAILURE:
        case MSG.S_PERMISSION_DENIED:
          msg.u32('request id');
          return finish({ status: null, refused: msg.cstring('reason') });
        case MSG.S_EXIT_MESSAGE:
          msg.u32('session id');
          return finish({ status: msg.u32('exit value'), refused: null });
        default:
          return; // SESSION_OPENED, TTY_ALLOC_FAIL: nothing to do
      }
    };
    conn.on('data', (chunk) => {
      parser.push(chunk);
      try {
        for (let frame = parser.next(); frame; frame = parser.next()) onFrame(frame);
      } catch (err) {
        finish(new Error(`the control socket spoke out of turn: ${(err as Error).message}`));
      }
    });
    const gone = (why: string): void =>
      // Before anything was asked, the socket was unusable (say, nothing serves it any more).
      requested ? finish({ status: null, refused: null }) : finish(new NoControlSocket(why));
    conn.on('end', () => gone('the control socket closed'));
    conn.on('close', () => gone('the control socket closed'));
    conn.on('error', (err) => gone(err.message));
    void interrupted.then(() => finish({ status: null, refused: null }));
  });
}

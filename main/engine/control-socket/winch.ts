// Window size changes of terminal sessions started through a control socket. A stock client
// does not send them over the socket: on its own SIGWINCH it sends SIGWINCH to the master's
// pid (from ALIVE_CHECK), and the master reads the size from the terminal it was passed. So
// this process handles SIGWINCH while such sessions exist, re-reads each one's terminal and
// sends a window-change for those whose size changed.

export interface WindowSize {
  cols: number;
  rows: number;
  width: number;
  height: number;
}

export interface ResizableSession {
  /** The size now, read from the passed terminal; null once it cannot be read. */
  read(): WindowSize | null;
  /** Sends the new size to the server. */
  apply(size: WindowSize): void;
}

const sessions = new Map<ResizableSession, WindowSize>();

function onWinch(): void {
  for (const [session, last] of sessions) {
    try {
      const now = session.read();
      if (!now) continue;
      if (now.cols === last.cols && now.rows === last.rows && now.width === last.width && now.height === last.height) continue;
      sessions.set(session, now);
      session.apply(now);
    } catch {
      // A terminal that went away meanwhile: its session is ending. Nothing here may throw.
    }
  }
}

/** Watches a session's terminal from now on; returns the function that stops watching. */
export function watchWindowSize(session: ResizableSession, initial: WindowSize): () => void {
  if (sessions.size === 0) process.on('SIGWINCH', onWinch);
  sessions.set(session, initial);
  return () => {
    if (!sessions.delete(session)) return;
    if (sessions.size === 0) process.removeListener('SIGWINCH', onWinch);
  };
}

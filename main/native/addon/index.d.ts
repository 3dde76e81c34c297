/** The credentials of the process that connected a Unix socket, taken by the kernel at connect(). */
export function peerCredentials(fd: number): { uid: number; gid: number; pid: number };
/** Marks a descriptor close-on-exec, so child processes do not inherit it. */
export function setCloseOnExec(fd: number): void;
/** Sets or clears O_NONBLOCK on the descriptor's open file description; answers whether it was set before. */
export function setNonBlocking(fd: number, on: boolean): boolean;
/** The terminal's size (TIOCGWINSZ), or null when the descriptor is not a terminal. */
export function windowSize(fd: number): { cols: number; rows: number; width: number; height: number } | null;
/** The terminal's modes encoded as RFC 4254 section 8 says (for a pty-req), or null when not a terminal. */
export function terminalModes(fd: number): Buffer | null;

/** A descriptor-passing endpoint owned by the event loop; see unix_socket.c. */
export interface NativeEndpoint {
  /** Starts or stops reading (a listener: accepting). */
  setReading(on: boolean): void;
  /** Writes what fits now, `fds` beside the first byte; the count written (0: full, 'writable' follows). */
  write(data: Buffer, fds?: number[]): number;
  /** No more writes (SHUT_WR). */
  shutdown(): void;
  /** Closes the socket; no event follows. Idempotent. */
  close(): void;
  fd(): number;
}
/** A listening Unix socket at `path`; the callback hears 'accept' (a new connection's fd) and 'error'. */
export function listen(path: string, backlog: number, callback: (event: string, a?: unknown, b?: unknown) => void): NativeEndpoint;
/** A connected socket's fd as an endpoint; the callback hears 'data', 'end', 'writable' and 'error'. */
export function adopt(fd: number, callback: (event: string, a?: unknown, b?: unknown) => void): NativeEndpoint;
/** Connects to a Unix socket now (non-blocking: a full backlog throws EAGAIN); the new fd. */
export function connect(path: string): number;

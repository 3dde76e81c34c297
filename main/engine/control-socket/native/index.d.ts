/** The credentials of the process that connected a Unix socket, taken by the kernel at connect(). */
export function peerCredentials(fd: number): { uid: number; gid: number; pid: number };
/** Marks a descriptor close-on-exec, so child processes do not inherit it. */
export function setCloseOnExec(fd: number): void;
/** The terminal's size (TIOCGWINSZ), or null when the descriptor is not a terminal. */
export function windowSize(fd: number): { cols: number; rows: number; width: number; height: number } | null;
/** The terminal's modes encoded as RFC 4254 section 8 says (for a pty-req), or null when not a terminal. */
export function terminalModes(fd: number): Buffer | null;

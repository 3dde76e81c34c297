// How a command's death by a signal shows as an exit status, the way a shell reports it.
import { constants } from 'node:os';

/**
 * 128 + the number of `signal` (`TERM`, or ssh2's `SIGTERM`) on this system, as a shell says
 * it; null for a name this system does not know.
 */
export function signalExitStatus(signal: string): number | null {
  const number = (constants.signals as Record<string, number | undefined>)[`SIG${signal.replace(/^SIG/, '')}`];
  return number === undefined ? null : 128 + number;
}

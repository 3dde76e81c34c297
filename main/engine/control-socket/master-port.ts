// What a control socket needs of the master it serves: the engine builds one of these per
// master, so nothing under control-socket/ reaches into the engine's own state.
import type { ClientChannel } from 'ssh2';
import type { Logger } from '../log';
import type { MasterConnection } from '../masters/master';
import type { Session } from '../sessions/session';

export interface ExternalSessionSpec {
  /** Gives the freshly opened channel its purpose: pty, env, then shell, exec or subsystem. */
  setup(channel: ClientChannel): Promise<void>;
  /** How the session is shown: a shell, or the command (or subsystem) it runs. */
  kind: 'shell' | 'exec';
  command: string | null;
  /** Opened by `hitch exec` (EXIT_SIGNAL_EXTENSION in its HELLO): shown as its private run. */
  hitchRun: boolean;
}

export interface MasterPort {
  readonly id: string;
  readonly log: Logger;
  /** Opens a session channel on the master and shows it in the engine as external. */
  openSession(spec: ExternalSessionSpec): Promise<{ channel: ClientChannel; session: Session }>;
  /** A direct-tcpip channel to host:port as the server sees it. */
  forwardOut(host: string, port: number): Promise<ClientChannel>;
  /** The connection forwards from the server arrive on (ssh -R), while the master is up. */
  primary(): MasterConnection | null;
  /** `ssh -O exit`: closes the master and everything on it. */
  terminate(): void;
  /** Counts a forward or stdio forward as using the master, so it does not idle out. */
  retain(): void;
  release(): void;
}

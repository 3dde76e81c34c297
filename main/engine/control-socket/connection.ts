// What a request handler sees of one control connection and of the server it came to. The
// handlers (handlers.ts, session-relay.ts, proxy.ts) depend on these interfaces only, and the
// server (server.ts) on the handler table: no import circle between them.
import type { Logger } from '../log';
import type { ControlSocketForwards } from './forwards';
import type { MessageReader } from './frames';
import type { MasterPort } from './master-port';
import type { Unix } from '../../native/unix';

export interface ControlServerPort {
  readonly master: MasterPort;
  readonly forwards: ControlSocketForwards;
  readonly unix: Unix;
  readonly log: Logger;
  /** A number for a session or stdio forward, as SESSION_OPENED and EXIT_MESSAGE name it. */
  sessionNumber(): number;
  /** `ssh -O stop`. */
  stopListeningForClient(): void;
}

export type ConnectionState = 'hello' | 'ready' | 'passenger' | 'proxy' | 'closed';

export interface ControlConnection {
  readonly server: ControlServerPort;
  readonly number: number;
  readonly log: Logger;
  /** hello: waiting for the client's HELLO · ready: taking requests · passenger: a session or stdio forward runs · proxy: SSH packets, no more frames. */
  state: ConnectionState;
  /** The client asked to hear of a command's death by signal (EXIT_SIGNAL_EXTENSION). */
  readonly exitSignals: boolean;
  /** Writes one frame (or, in proxy mode, raw bytes). */
  send(data: Buffer): void;
  /** The `count` descriptors the client passes right after the current request; the caller owns them. */
  receiveFds(count: number): Promise<number[]>;
  /** Bytes after the MUX_S_PROXY reply are SSH packets, handed to `receiver`. */
  enterProxyMode(receiver: (chunk: Buffer) => void): void;
  /** Runs when the connection closes, however it closes. */
  onClose(listener: () => void): void;
  /** Closes once queued replies are written; `reason` is logged, null for an ordinary end. */
  close(reason: string | null): void;
}

/** One entry of the dispatch table: handles one request type. */
export type Handler = (client: ControlConnection, rid: number, msg: MessageReader) => void | Promise<void>;

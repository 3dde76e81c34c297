// Port forwards a stock client asks a master for (`ssh -O forward`, or -L/-R/-D with `ssh -S`),
// as the control socket's handlers see them: OpenSSH's forwarding requests turned into entries
// of the master's one forward table (engine/forwards/), where they are listed with Hitch's own
// (origin `control-socket`). Like Hitch's unsaved forwards they outlive the client that asked
// and the master's reconnects, and end with the master (closed) or `ssh -O cancel`.
import { sameRequest, type ForwardRequest, type ForwardTable } from '../forwards/forward-table';
import { FWD } from './frames';

export interface ForwardSpec {
  type: number;
  /** As the client sent it: '' for the default address, '*' for every address. */
  listenHost: string;
  listenPort: number;
  connectHost: string;
  connectPort: number;
}

export function describeForward(spec: ForwardSpec): string {
  const listen = `${spec.listenHost || 'localhost'}:${spec.listenPort}`;
  if (spec.type === FWD.DYNAMIC) return `dynamic forward ${listen}`;
  return `${spec.type === FWD.REMOTE ? 'remote' : 'local'} forward ${listen} -> ${spec.connectHost}:${spec.connectPort}`;
}

/** OpenSSH's request as the table's: the default address is loopback (`localhost`). */
export function requestOf(spec: ForwardSpec): ForwardRequest {
  const dynamic = spec.type === FWD.DYNAMIC;
  return {
    kind: dynamic ? 'dynamic' : spec.type === FWD.REMOTE ? 'remote' : 'local',
    bindAddress: spec.listenHost === '' ? 'localhost' : spec.listenHost,
    listenPort: spec.listenPort,
    connectHost: dynamic ? null : spec.connectHost,
    connectPort: dynamic ? null : spec.connectPort,
  };
}

export class ControlSocketForwards {
  constructor(private readonly table: ForwardTable) {}

  /** Sets up a forward; an identical one already up is fine. Throws when it cannot be set up. */
  async open(spec: ForwardSpec): Promise<{ allocatedPort: number | null }> {
    const forward = await this.table.open(requestOf(spec), 'control-socket');
    // A remote forward asked for port 0 learns the port the server chose (ssh -O forward prints it).
    return { allocatedPort: spec.type === FWD.REMOTE && spec.listenPort === 0 ? forward.boundPort : null };
  }

  async cancel(spec: ForwardSpec): Promise<void> {
    // Only what stock clients opened: Hitch's own (maybe saved) are cancelled in Hitch.
    const forward = this.table.list().find((f) => f.origin === 'control-socket' && sameRequest(f.request, requestOf(spec)));
    if (!forward) throw new Error('port not forwarded');
    await this.table.cancel(forward);
  }
}

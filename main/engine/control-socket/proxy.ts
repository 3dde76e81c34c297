// MUX_C_PROXY (`ssh -O proxy`): after MUX_S_PROXY the connection carries unencrypted SSH
// connection-protocol packets, and the master translates channel numbers between the client
// and the server. Not implemented yet: the request is answered with MUX_S_FAILURE.
import { reply } from './frames';
import type { ControlClient } from './server';

export function startProxy(client: ControlClient, rid: number): void {
  client.log.warn('control socket: proxy mode (ssh -O proxy) asked for; Hitch does not offer it yet', { master: client.server.master.id });
  client.send(reply.failure(rid, 'proxy mode is not supported by Hitch'));
}

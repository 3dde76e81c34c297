// The dispatch table of the control socket, after OpenSSH's mux_master_handlers[]: one small
// handler per client message type. Each reads its body with the bounds-checked reader (a
// ProtocolError closes the connection, as OpenSSH's handlers returning -1 do) and answers
// through the replies in frames.ts. HELLO is handled by the connection itself (server.ts).
import { FWD, MSG, PORT_STREAMLOCAL, ProtocolError, reply, type MessageReader } from './frames';
import type { ForwardSpec } from './forwards';
import { startProxy } from './proxy';
import type { Handler } from './connection';
import { relayNewSession, relayStdioForward } from './session-relay';

const aliveCheck: Handler = (client, rid, msg) => {
  msg.end('ALIVE_CHECK');
  // The pid a stock client sends SIGWINCH to when its terminal is resized.
  client.send(reply.alive(rid, process.pid));
};

const terminate: Handler = (client, rid, msg) => {
  msg.end('TERMINATE');
  client.log.info('control socket: terminate requested (ssh -O exit)', { master: client.server.master.id });
  client.send(reply.ok(rid));
  // After the reply is on its way: closing the master closes this connection too.
  setImmediate(() => client.server.master.terminate());
};

const stopListening: Handler = (client, rid, msg) => {
  msg.end('STOP_LISTENING');
  client.log.info('control socket: stop listening requested (ssh -O stop)', { master: client.server.master.id });
  client.server.stopListeningForClient();
  client.send(reply.ok(rid));
};

function readForward(msg: MessageReader): ForwardSpec {
  const type = msg.u32('forwarding type');
  const listenHost = msg.cstring('listen host');
  const listenPort = msg.u32('listen port');
  const connectHost = msg.cstring('connect host');
  const connectPort = msg.u32('connect port');
  msg.end('forwarding request');
  if ((listenPort !== PORT_STREAMLOCAL && listenPort > 65535) || (connectPort !== PORT_STREAMLOCAL && connectPort > 65535)) {
    throw new ProtocolError('malformed forwarding request: port out of range');
  }
  return { type, listenHost, listenPort, connectHost, connectPort };
}

/** Why a forwarding request cannot be carried out as asked, or null; checked as OpenSSH does. */
function invalidForward(spec: ForwardSpec): string | null {
  if (spec.type !== FWD.LOCAL && spec.type !== FWD.REMOTE && spec.type !== FWD.DYNAMIC) return `invalid forwarding type ${spec.type}`;
  if (spec.listenPort === PORT_STREAMLOCAL || spec.connectPort === PORT_STREAMLOCAL) return 'Unix-domain socket forwarding is not supported by Hitch';
  if (spec.type === FWD.LOCAL && spec.connectPort === 0) return 'invalid connect port 0';
  if (spec.type !== FWD.DYNAMIC && spec.connectHost === '') return 'missing connect host';
  return null;
}

const openForward: Handler = async (client, rid, msg) => {
  const spec = readForward(msg);
  const invalid = invalidForward(spec);
  if (invalid) {
    client.log.warn('control socket: forwarding refused', { master: client.server.master.id, reason: invalid });
    client.send(reply.failure(rid, invalid === `invalid forwarding type ${spec.type}` ? 'Invalid forwarding request' : invalid));
    return;
  }
  try {
    const { allocatedPort } = await client.server.forwards.open(spec);
    // A remote forward asked for port 0 learns the port the server chose (ssh -O forward prints it).
    client.send(allocatedPort !== null ? reply.remotePort(rid, allocatedPort) : reply.ok(rid));
  } catch (err) {
    client.log.warn('control socket: forwarding failed', { master: client.server.master.id, error: (err as Error).message });
    client.send(reply.failure(rid, 'Port forwarding failed'));
  }
};

const closeForward: Handler = async (client, rid, msg) => {
  const spec = readForward(msg);
  try {
    await client.server.forwards.cancel(spec);
    client.send(reply.ok(rid));
  } catch (err) {
    client.send(reply.failure(rid, (err as Error).message));
  }
};

const newSession: Handler = async (client, rid, msg) => {
  msg.skipString('reserved');
  const request = {
    wantTty: msg.u32('want tty flag') !== 0,
    wantX11: msg.u32('want X11 flag') !== 0,
    wantAgent: msg.u32('want agent flag') !== 0,
    subsystem: msg.u32('subsystem flag') !== 0,
    escapeChar: msg.u32('escape char'),
    term: msg.cstring('terminal type'),
    command: msg.cstring('command'),
    env: [] as string[],
  };
  while (msg.remaining > 0) {
    const entry = msg.cstring('environment string');
    if (request.env.length < 4096) request.env.push(entry);
  }
  const fds = await client.receiveFds(3);
  await relayNewSession(client, rid, request, fds as [number, number, number]);
};

const newStdioForward: Handler = async (client, rid, msg) => {
  msg.skipString('reserved');
  const host = msg.cstring('connect host');
  const port = msg.u32('connect port');
  msg.end('NEW_STDIO_FWD');
  if (port !== PORT_STREAMLOCAL && port > 65535) throw new ProtocolError(`malformed NEW_STDIO_FWD: port ${port}`);
  const fds = await client.receiveFds(2);
  await relayStdioForward(client, rid, host, port, fds as [number, number]);
};

const proxy: Handler = (client, rid, msg) => {
  msg.end('PROXY');
  startProxy(client, rid);
};

export const handlers = new Map<number, Handler>([
  [MSG.C_NEW_SESSION, newSession],
  [MSG.C_ALIVE_CHECK, aliveCheck],
  [MSG.C_TERMINATE, terminate],
  [MSG.C_OPEN_FWD, openForward],
  [MSG.C_CLOSE_FWD, closeForward],
  [MSG.C_NEW_STDIO_FWD, newStdioForward],
  [MSG.C_STOP_LISTENING, stopListening],
  [MSG.C_PROXY, proxy],
]);

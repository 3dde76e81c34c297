// Session channels in two steps: open the channel first, give it its purpose (pty, shell,
// exec, subsystem) later. ssh2 only offers both at once, so a channel opened ahead of need
// (one round trip saved) and the requests a stock OpenSSH client relays through a control
// socket (pty modes, env, subsystem) need these. They mirror ssh2's own client code
// (lib/client.js: openChannel, reqPty, reqExec, reqShell, reqSubsystem) and use its
// internals, so they live here, in one place, for the ssh2 version package.json pins.
import type { Client, ClientChannel } from 'ssh2';
// The window and packet size ssh2 itself opens channels with; its Channel class assumes them.
import { MAX_WINDOW, PACKET_SIZE } from 'ssh2/lib/Channel.js';
import { sendPacket } from 'ssh2/lib/protocol/utils.js';

interface Internals {
  _chanMgr: { add(cb: unknown): number };
  _protocol: {
    session(local: number, window: number, packetSize: number): void;
    pty(id: number, rows: number, cols: number, height: number, width: number, term: string, modes: Buffer | null, wantReply: boolean): void;
    shell(id: number, wantReply: boolean): void;
    exec(id: number, command: string, wantReply: boolean): void;
    subsystem(id: number, name: string, wantReply: boolean): void;
    env(id: number, key: string, value: string, wantReply: boolean): void;
  };
}

interface ChannelInternals {
  outgoing: { id: number; state: string };
  _callbacks: ((failed: boolean | Error) => void)[];
  subtype?: string;
}

/**
 * Opens a session channel with no request on it yet. Rejects with ssh2's error (and `reason`).
 * `as: 'sftp'` makes ssh2 give it its SFTP client class (lib/protocol/SFTP.js) instead of a
 * plain channel, as its own `client.sftp()` does; the caller then asks for the subsystem.
 */
export function openBareSession(client: Client, as: 'session' | 'sftp' = 'session'): Promise<ClientChannel> {
  const c = client as unknown as Internals;
  return new Promise((resolve, reject) => {
    const onOpen = Object.assign(
      (err: Error | undefined, channel: ClientChannel) => (err ? reject(err) : resolve(channel)),
      { type: as },
    );
    const local = c._chanMgr.add(onOpen);
    if (local === -1) {
      reject(new Error('No free channels available'));
      return;
    }
    c._protocol.session(local, MAX_WINDOW, PACKET_SIZE);
  });
}

function request(channel: ClientChannel, what: string, send: (id: number, protocol: Internals['_protocol']) => void, subtype?: string): Promise<void> {
  const ch = channel as unknown as ChannelInternals;
  const protocol = (channel as unknown as { _client: Internals })._client._protocol;
  return new Promise((resolve, reject) => {
    if (ch.outgoing.state !== 'open') {
      reject(new Error('Channel is not open'));
      return;
    }
    ch._callbacks.push((failed) => {
      if (failed) reject(failed instanceof Error ? failed : new Error(`The server refused the ${what} request`));
      else {
        if (subtype) ch.subtype = subtype;
        resolve();
      }
    });
    send(ch.outgoing.id, protocol);
  });
}

export interface PtyRequest {
  term: string;
  cols: number;
  rows: number;
  /** Encoded terminal modes (RFC 4254 8), as a stock client sends them; none by default. */
  modes?: Buffer | null;
}

export function requestPty(channel: ClientChannel, pty: PtyRequest): Promise<void> {
  return request(channel, 'pty', (id, p) => p.pty(id, pty.rows, pty.cols, 0, 0, pty.term, pty.modes ?? null, true));
}

export function requestShell(channel: ClientChannel): Promise<void> {
  return request(channel, 'shell', (id, p) => p.shell(id, true), 'shell');
}

export function requestExec(channel: ClientChannel, command: string): Promise<void> {
  return request(channel, 'exec', (id, p) => p.exec(id, command, true), 'exec');
}

export function requestSubsystem(channel: ClientChannel, name: string): Promise<void> {
  return request(channel, 'subsystem', (id, p) => p.subsystem(id, name, true), 'subsystem');
}

/** Sets an environment variable; servers accept only names their AcceptEnv allows, silently. */
export function requestEnv(channel: ClientChannel, name: string, value: string): void {
  const ch = channel as unknown as ChannelInternals;
  if (ch.outgoing.state === 'open') (channel as unknown as { _client: Internals })._client._protocol.env(ch.outgoing.id, name, value, false);
}

/**
 * Sends keepalive@openssh.com, as OpenSSH's ServerAliveInterval does, and resolves when the
 * server answers (any answer means it is alive). ssh2 matches global-request replies to its
 * callback queue in order, so ours goes on the same queue.
 */
export function ping(client: Client): Promise<void> {
  const c = client as unknown as { _callbacks: (() => void)[]; _protocol: { ping(): void } };
  return new Promise((resolve) => {
    c._callbacks.push(() => resolve());
    c._protocol.ping();
  });
}

/**
 * Sends a "signal" channel request. ssh2's own `channel.signal()` stays silent once the
 * channel's input has ended (EOF sent), though the command still runs and the request is
 * valid until the channel is closed; this sends it in that state too.
 */
export function requestSignal(channel: ClientChannel, name: string): void {
  const ch = channel as unknown as ChannelInternals & { _client: { _protocol: { signal(id: number, name: string): void } } };
  if (ch.outgoing.state === 'open' || ch.outgoing.state === 'eof') ch._client._protocol.signal(ch.outgoing.id, name);
}

/** SSH_MSG_IGNORE (RFC 4253): a packet the receiver discards. */
const IGNORE = 2;

/**
 * Answers each SSH_MSG_DEBUG from the server with an SSH_MSG_IGNORE, so that the server's next
 * reply does not wait ~40 ms.
 *
 * Right after a public-key login, sshd sends its notes on the key's options as DEBUG messages,
 * in a small TCP segment of their own that asks for no answer. sshd leaves Nagle's algorithm on
 * (it sets TCP_NODELAY for pty sessions only), so its reply to the first channel open waits for
 * that segment's ACK, and Linux delays the ACK of a segment it has nothing to send back for by
 * 40 ms. The first session on every new connection paid that wait: a fresh prompt, a reconnect's
 * durable shells. A packet sent back at once carries the ACK with it. ssh2 itself only logs DEBUG
 * messages, with its `debug` option (unused here); their text is not used.
 */
export function answerServerDebug(client: Client): void {
  const protocol = (client as unknown as { _protocol: PacketWriting & { _handlers: { DEBUG?: () => void } } })._protocol;
  protocol._handlers.DEBUG = () => {
    const writer = protocol._packetRW.write;
    const p = writer.allocStart;
    const packet = writer.alloc(1 + 4);
    packet[p] = IGNORE;
    packet.writeUInt32BE(0, p + 1); // no data
    sendPacket(protocol, writer.finalize(packet));
  };
}

interface SigningKey {
  isPrivateKey(): boolean;
  sign(data: Buffer, hash?: string): Buffer | Error;
}

type SignCallback = (data: Buffer, send: (signature: Buffer) => void) => void;

interface AuthInternals {
  authPK(username: string, key: unknown, keyAlgo?: string | SignCallback, sign?: SignCallback): void;
}

/** The hash ssh2 signs with for a key algorithm (its client's getKeyAlgos); none for keys with one of their own. */
function signatureHash(keyAlgo: string | undefined): string | undefined {
  return ({ 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512', 'ssh-rsa': 'sha1' } as Record<string, string>)[keyAlgo ?? ''];
}

/**
 * Logs in with a key file in one round trip instead of two: the signed request goes at once
 * (RFC 4252, section 7: the client MAY send the signature without first asking whether the key
 * is acceptable), where ssh2 always asks first and signs after the server's PK_OK. A key the
 * server refuses fails as before, and the next one is tried.
 *
 * Only for the first key file offered (the usual case: one key), whose private half is here
 * (its passphrase was asked before it was offered). A signature proves to the server that this
 * client holds the key, which a question does not: further key files are asked about first, as
 * `ssh` does, and so are keys in an agent, where signing may make the agent ask its owner to
 * confirm, which only a key the server accepts is worth.
 */
export function signKeysAtOnce(client: Client): void {
  const protocol = (client as unknown as { _protocol: AuthInternals })._protocol;
  const authPK = protocol.authPK.bind(protocol);
  let signedKey: unknown = null;
  protocol.authPK = (username, key, keyAlgo, sign) => {
    const signing = key as Partial<SigningKey> | null;
    const first = signedKey === null || signedKey === key; // the same key again: another algorithm of it
    if (sign || !first || typeof keyAlgo === 'function' || typeof signing?.isPrivateKey !== 'function' || !signing.isPrivateKey()) {
      authPK(username, key, keyAlgo, sign);
      return;
    }
    signedKey = key;
    authPK(username, key, keyAlgo, (data, send) => {
      const signature = (signing as SigningKey).sign(data, signatureHash(keyAlgo));
      // Nothing was sent yet: on a failure to sign, ask first as ssh2 would (it reports the failure after PK_OK).
      if (signature instanceof Error) authPK(username, key, keyAlgo);
      else send(signature);
    });
  };
}

/** SSH_MSG_CHANNEL_REQUEST (RFC 4254). */
const CHANNEL_REQUEST = 98;
const EOW = 'eow@openssh.com';

/**
 * Tells the server that nothing more of the channel's output will be read (OpenSSH's
 * `eow@openssh.com`, sent by its client when the reader of its stdout went away): sshd closes
 * the command's stdout, so the command meets a closed pipe (SIGPIPE) as it would locally.
 * ssh2 has no call for it; the packet is made like its own `signal` request. Servers that do
 * not know it ignore it (no reply asked).
 */
export function requestEndOfWrite(channel: ClientChannel): void {
  const ch = channel as unknown as ChannelInternals & { _client: { _protocol: PacketWriting } };
  if (ch.outgoing.state !== 'open' && ch.outgoing.state !== 'eof') return;
  const protocol = ch._client._protocol;
  const writer = protocol._packetRW.write;
  let p = writer.allocStart;
  const packet = writer.alloc(1 + 4 + 4 + EOW.length + 1);
  packet[p] = CHANNEL_REQUEST;
  packet.writeUInt32BE(ch.outgoing.id, ++p);
  packet.writeUInt32BE(EOW.length, (p += 4));
  packet.write(EOW, (p += 4), 'latin1');
  packet[p + EOW.length] = 0; // want reply: no
  sendPacket(protocol, writer.finalize(packet));
}

interface PacketWriting {
  _packetRW: { write: { allocStart: number; alloc(length: number): Buffer; finalize(packet: Buffer): Buffer } };
}

interface WindowInternals {
  incoming: { window: number };
  outgoing: { id: number; state: string };
  push(data: Buffer | null): unknown;
  _client: { _protocol: { channelWindowAdjust(id: number, amount: number): void } };
}

/**
 * Gives an open channel a receive window of `bytes` instead of ssh2's 2 MiB, kept topped up
 * as data arrives (once half of it is used, as ssh2 does with its own).
 *
 * For a transfer with more bytes asked for than ssh2's window holds (an SFTP download keeps
 * 3-4 MiB of reads in flight), the server stops at the window's end and waits for the
 * adjustment; each pause of this process (a collection of 5-8 ms) then stalls the server too.
 * Hitch's window stays the larger one because ssh2 tops its own up only below 1 MiB. What
 * arrives is still bounded by what the reads asked for, not by the window.
 */
export function widenWindow(channel: ClientChannel, bytes: number): void {
  const ch = channel as unknown as WindowInternals;
  const topUp = (): void => {
    const amount = bytes - ch.incoming.window;
    if (amount <= 0 || ch.outgoing.state !== 'open') return;
    ch.incoming.window += amount;
    ch._client._protocol.channelWindowAdjust(ch.outgoing.id, amount);
  };
  const push = ch.push.bind(ch);
  ch.push = (data: Buffer | null): unknown => {
    const taken = push(data);
    // A reader that pushes back (false) is adjusted by ssh2 once it drains, as before.
    if (taken !== false && data !== null && ch.incoming.window <= bytes / 2) topUp();
    return taken;
  };
  topUp();
}

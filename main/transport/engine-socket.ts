// The engine socket: the third transport of the API contract, for the `hitch` command and for
// a desktop app or web host that finds an engine already running. A Unix socket in the user's
// private runtime directory carrying newline-delimited JSON in the web host's envelope:
// `{id, method, params}` in, `{id, ok, result|error}` and `{event, payload}` out. Each client
// gets its own connection to the API (main/api/connection.ts), as on the other transports.
//
// Who may connect: the directory is 0700 and the socket 0600, so the kernel refuses other
// users at connect() (EACCES); where hitch-native loads, the peer's uid (SO_PEERCRED) is
// checked too, so loosened permissions alone never let another user in. The client checks the
// other way round before sending anything: the directory and socket are this user's, and so is
// the process serving it.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, link, lstat, mkdir, open, stat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { HitchEvent } from '../../preload/api';
import type { ErrorInfo, Reply } from '../../preload/channels';
import { RpcClient } from '../../preload/rpc-client';
import { bytesAsBase64 } from '../api/bytes';
import type { Api, Connection, Outgoing } from '../api/connection';
import { loadUnix } from '../native/unix';
import type { Logger } from '../engine/log';
import { MAX_SOCKET_PATH_BYTES } from './master-link-path';
import { publishMasterLinks, type MasterLinkSource } from './master-links';

/** Requests longer than this are refused and the connection closed. */
export const MAX_REQUEST_BYTES = 1 << 20;
/** Replies and events can be large (a replayed scrollback): the client accepts up to this. */
const MAX_REPLY_BYTES = 256 << 20;
/** A client that reads nothing while this much waits for it is dropped, not buffered forever. */
const MAX_UNREAD_BYTES = 64 << 20;
/** Past this much unread, the sessions a client streams wait for it to read (flow control). */
const FLOW_HIGH_WATER_BYTES = 1 << 20;
export const SOCKET_NAME = 'engine.sock';

const JSON_HINT = 'Each line must be one JSON request: {"id": number, "method": string, "params": object}.';

/** The socket's path in a runtime directory. */
export function engineSocketPath(runtimeDir: string): string {
  return join(runtimeDir, SOCKET_NAME);
}

/** Raised when another engine already serves the socket: it is never taken over. */
export class EngineRunningError extends Error {
  constructor(readonly socketPath: string) {
    super(`A Hitch engine already serves ${socketPath}.`);
    this.name = 'EngineRunningError';
  }
}

/** Raised by connectEngineSocket when nothing serves the socket. */
export class NoEngineError extends Error {
  constructor(
    readonly socketPath: string,
    readonly reason: 'missing' | 'stale',
  ) {
    super(`No Hitch engine is running (${reason === 'missing' ? 'no socket at' : 'nothing answers at'} ${socketPath}).`);
    this.name = 'NoEngineError';
  }
}

// ---------------------------------------------------------------------------------------
// Framing shared by both ends: one JSON value per line. From the engine to a client that asked
// for them (FRAMES_REQUEST), a raw session's output goes in binary frames instead, its bytes
// as they are rather than base64 inside JSON:
//   0x00 · header length (u32, big-endian) · data length (u32) · header · data
// where the header is the `session.data` event as JSON without its `data`. A JSON line never
// starts with a NUL byte, so the first byte of each message says which it is.

const FRAME_MARK = 0;
const FRAME_PREFIX_BYTES = 9;

/**
 * Asks the engine for binary frames. Sent as a request with id 0, which the client never uses
 * for a call: an engine of a version without frames answers it with an error that is ignored,
 * and goes on sending JSON, which the client still reads.
 */
const FRAMES_REQUEST = { id: 0, method: 'transport.frames', params: { binary: true } };

interface ReaderHandlers {
  line(text: string): void;
  /** A binary frame; absent where there are none (the engine reading its clients: lines only). */
  frame?(header: string, data: Buffer): void;
  /** A message outgrew the limit; nothing more is read. */
  refuse(): void;
}

/** Splits a byte stream into JSON lines and binary frames, each at most `maxBytes`. */
function messageReader(maxBytes: number, on: ReaderHandlers): (chunk: Buffer) => void {
  // The current message, as far as it has arrived: its pieces and their total length. Its
  // first byte says what it is (FRAME_MARK: a frame; else a line, ending at a newline).
  // A frame's total length is known once its 9-byte prefix is in (`frameBytes`, else 0); a
  // frame wholly inside one chunk skips all this and is passed on without a copy.
  let parts: Buffer[] = [];
  let size = 0;
  let frameBytes = 0;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    parts = [];
    on.refuse();
  };
  const take = (): Buffer => {
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    parts = [];
    size = 0;
    return all;
  };
  return (chunk) => {
    let rest = chunk;
    while (!stopped && rest.length > 0) {
      const first = size === 0 ? rest[0] : parts[0]![0];
      if (first !== FRAME_MARK || !on.frame) {
        const nl = rest.indexOf(10);
        if (nl === -1) {
          parts.push(rest);
          size += rest.length;
          if (size > maxBytes) stop();
          return;
        }
        parts.push(rest.subarray(0, nl));
        size += nl;
        rest = rest.subarray(nl + 1);
        if (size > maxBytes) return stop();
        const line = take().toString('utf8');
        if (line.trim() !== '') on.line(line);
        continue;
      }
      if (size === 0 && rest.length >= FRAME_PREFIX_BYTES) {
        // The common case: the whole frame is in this chunk, and is passed on without a copy.
        const total = FRAME_PREFIX_BYTES + rest.readUInt32BE(1) + rest.readUInt32BE(5);
        if (total > maxBytes) return stop();
        if (rest.length >= total) {
          const headerEnd = FRAME_PREFIX_BYTES + rest.readUInt32BE(1);
          on.frame(rest.toString('utf8', FRAME_PREFIX_BYTES, headerEnd), rest.subarray(headerEnd, total));
          rest = rest.subarray(total);
          continue;
        }
      }
      parts.push(rest);
      size += rest.length;
      rest = Buffer.alloc(0);
      if (frameBytes === 0 && size >= FRAME_PREFIX_BYTES) {
        const prefix = take();
        frameBytes = FRAME_PREFIX_BYTES + prefix.readUInt32BE(1) + prefix.readUInt32BE(5);
        parts = [prefix];
        size = prefix.length;
        if (frameBytes > maxBytes) return stop();
      }
      if (frameBytes === 0 || size < frameBytes) return;
      const all = take();
      const headerEnd = FRAME_PREFIX_BYTES + all.readUInt32BE(1);
      on.frame(all.toString('utf8', FRAME_PREFIX_BYTES, headerEnd), all.subarray(headerEnd, frameBytes));
      rest = all.subarray(frameBytes);
      frameBytes = 0;
    }
  };
}

function sendLine(socket: Socket, message: unknown): void {
  if (!socket.destroyed && socket.writable) socket.write(JSON.stringify(message) + '\n');
}

function isFramesRequest(json: unknown): boolean {
  const r = json as { id?: unknown; method?: unknown; params?: { binary?: unknown } } | null;
  return r !== null && typeof r === 'object' && r.id === FRAMES_REQUEST.id && r.method === FRAMES_REQUEST.method && r.params?.binary === true;
}

/** Sends a raw session's output in a binary frame: its bytes as they are. */
function sendFrame(socket: Socket, event: Extract<HitchEvent, { event: 'session.data' }>, data: Uint8Array): void {
  if (socket.destroyed || !socket.writable) return;
  const header = Buffer.from(JSON.stringify({ event: event.event, payload: { ...event.payload, data: undefined } }));
  const prefix = Buffer.allocUnsafe(FRAME_PREFIX_BYTES);
  prefix[0] = FRAME_MARK;
  prefix.writeUInt32BE(header.length, 1);
  prefix.writeUInt32BE(data.length, 5);
  socket.cork();
  socket.write(prefix);
  socket.write(header);
  socket.write(data);
  socket.uncork();
}

// ---------------------------------------------------------------------------------------
// Serving

export interface EngineSocketServerOptions {
  api: Api;
  runtimeDir: string;
  log: Logger;
  /** The engine behind `api`, when in this process: its ready masters are linked for `hitch exec` (master-links.ts). */
  masters?: MasterLinkSource;
}

export interface EngineSocketServer {
  path: string;
  close(): Promise<void>;
}

/** The uid of a connected peer, or null where the native helper is unavailable. */
type PeerUid = (socket: Socket) => number | null;

async function peerUidReader(log: Logger): Promise<PeerUid> {
  try {
    const mod = (await import('hitch-native')) as typeof import('hitch-native') & { default?: typeof import('hitch-native') };
    const native = mod.default && typeof mod.default.peerCredentials === 'function' ? mod.default : mod;
    return (socket) => {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      return typeof fd === 'number' && fd >= 0 ? native.peerCredentials(fd).uid : null;
    };
  } catch (err) {
    log.warn('engine socket: peer credentials unavailable, relying on the private directory alone', { error: (err as Error).message });
    return () => null;
  }
}

/**
 * Makes the runtime directory private: created 0700, or, if it exists, a real directory of
 * this user, tightened to 0700. Anything else (a symlink, another user's directory) is refused.
 */
export async function privateRuntimeDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory; refusing to put the engine socket there.`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not to this user; refusing to put the engine socket there.`);
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}

/** Whether something accepts connections at `path`: true live, false stale, null no such file. */
export function probeSocket(path: string): Promise<boolean | null> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') resolve(null);
      else if (err.code === 'ECONNREFUSED') resolve(false);
      else reject(new Error(`Cannot reach ${path}: ${err.message}`));
    });
  });
}

/**
 * Serialises starting engines in one runtime directory, so that two starting at once cannot
 * both find a stale socket and one remove what the other just bound. A lock left by a crash
 * is broken after a few seconds: binding takes milliseconds.
 */
async function withStartLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = join(dir, 'engine.lock');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const handle = await open(lockPath, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 5_000) await unlink(lockPath).catch(() => undefined);
      else if (Date.now() > deadline) throw new Error(`${lockPath} is held by another starting engine.`);
      else await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

/**
 * Serves the router on `<runtimeDir>/engine.sock`. Throws EngineRunningError when a live
 * engine serves it already; a socket left by a crashed engine (nothing answers) is replaced.
 */
export async function serveEngineSocket(opts: EngineSocketServerOptions): Promise<EngineSocketServer> {
  const { api, log, runtimeDir } = opts;
  const path = engineSocketPath(runtimeDir);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`The engine socket path ${path} is longer than ${MAX_SOCKET_PATH_BYTES} bytes; set HITCH_RUNTIME_DIR to a shorter directory.`);
  }
  await privateRuntimeDir(runtimeDir);
  const peerUid = await peerUidReader(log);
  const ownUid = process.getuid?.() ?? null;
  const clients = new Set<Socket>();

  const server = createServer({ allowHalfOpen: false }, (socket) => {
    const uid = ownUid === null ? null : peerUid(socket);
    if (uid !== null && uid !== ownUid) {
      log.warn('engine socket refused a client', { reason: 'another user', uid });
      sendLine(socket, { id: null, ok: false, error: { code: 'forbidden', message: 'The Hitch engine serves only its own user.' } });
      socket.end();
      return;
    }
    serveClient(socket);
  });

  const serveClient = (socket: Socket): void => {
    clients.add(socket);
    /** The client asked for binary frames (FRAMES_REQUEST). */
    let frames = false;
    const send = (message: Outgoing): void => {
      if (socket.writableLength > MAX_UNREAD_BYTES) {
        log.warn('engine socket dropped a client that stopped reading', { unread: socket.writableLength });
        socket.destroy();
        return;
      }
      if ('event' in message && message.event === 'session.data' && typeof message.payload.data !== 'string') {
        if (frames) sendFrame(socket, message, message.payload.data);
        else sendLine(socket, bytesAsBase64(message));
      } else sendLine(socket, message);
      // A client reading slower than its sessions write (`hitch exec … | slow`): their output
      // waits at the SSH channel until this drains, instead of piling up here.
      if (!full && socket.writableLength > FLOW_HIGH_WATER_BYTES) {
        full = true;
        connection.backpressure?.(true);
        socket.once('drain', () => {
          full = false;
          connection.backpressure?.(false);
        });
      }
    };
    let full = false;
    const refuse = (message: string): void => send({ id: null, ok: false, error: { code: 'bad-request', message } satisfies ErrorInfo });
    // A command killed mid-run leaves no reader behind: closing this ends what it ran.
    const connection = api.openConnection(send, { bytes: true });

    socket.on(
      'data',
      messageReader(MAX_REQUEST_BYTES, {
        line(line) {
          let json: unknown;
          try {
            json = JSON.parse(line);
          } catch {
            refuse(`Malformed JSON. ${JSON_HINT}`);
            return;
          }
          // Not a call: nothing answers it (an engine without frames refuses it, which is ignored).
          if (isFramesRequest(json)) frames = true;
          else connection.request(json);
        },
        refuse() {
          log.warn('engine socket refused a request', { reason: 'over 1 MiB' });
          refuse(`A request is at most ${MAX_REQUEST_BYTES} bytes; this one was longer. Closing the connection.`);
          socket.end();
        },
      }),
    );
    socket.on('error', (err) => log.debug('engine socket client error', { error: err.message }));
    socket.on('close', () => {
      clients.delete(socket);
      connection.close();
    });
  };

  // Bound under a temporary name, made 0600, then linked into place: the socket never appears
  // at its real path with looser permissions, and link() fails rather than replace a file.
  const ino = await withStartLock(runtimeDir, async () => {
    const live = await probeSocket(path);
    if (live) throw new EngineRunningError(path);
    if (live === false) {
      const st = await lstat(path);
      if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it.`);
      log.info('engine socket: replacing a stale socket (its engine is gone)', { path });
      await unlink(path);
    }
    const temp = join(runtimeDir, `.${SOCKET_NAME}.${process.pid}.${randomBytes(4).toString('hex')}`);
    await listen(server, temp);
    try {
      await chmod(temp, 0o600);
      await link(temp, path);
    } catch (err) {
      server.close();
      throw err;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    return (await stat(path)).ino;
  });
  log.info('engine socket serving', { path });
  const links = opts.masters ? publishMasterLinks(opts.masters, runtimeDir, log) : null;

  return {
    path,
    async close() {
      await links?.close();
      for (const client of clients) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // Only our own socket: a newer engine may own the path by now.
      const st = await stat(path).catch(() => null);
      if (st && st.ino === ino) await unlink(path).catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Connecting

/** A connection to a running engine, as one client of it (the `hitch` command). */
export interface EngineConnection {
  call(method: string, params: unknown): Promise<Reply>;
  onEvent(listener: (event: HitchEvent) => void): () => void;
  /** Called once when the connection ends (the engine stopped, or close() was called). */
  onClose(listener: (reason: string) => void): void;
  /** Stops reading the engine's messages (the engine's sessions then wait), until resume(). */
  pause(): void;
  resume(): void;
  close(): void;
  readonly path: string;
}

/** Raised when the socket or whoever serves it cannot be trusted with this user's requests. */
export class UntrustedEngineError extends Error {
  constructor(
    readonly socketPath: string,
    reason: string,
  ) {
    super(`Refusing to use the Hitch engine socket ${socketPath}: ${reason}. Nothing was sent to it.`);
    this.name = 'UntrustedEngineError';
  }
}

/**
 * Before anything is sent (prompt answers carry passwords): the socket's directory must be a
 * real directory of this user that nobody else can write to, and the socket this user's own.
 * A missing socket is NoEngineError, as before.
 */
async function checkSocketPlace(path: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return; // not a Unix system: no engine socket to check
  const dir = dirname(path);
  const d = await lstat(dir).catch(() => null);
  if (!d) throw new NoEngineError(path, 'missing');
  if (d.isSymbolicLink()) throw new UntrustedEngineError(path, `its directory ${dir} is a symbolic link`);
  if (!d.isDirectory()) throw new UntrustedEngineError(path, `${dir} is not a directory`);
  if (d.uid !== uid) throw new UntrustedEngineError(path, `its directory ${dir} belongs to uid ${d.uid}, not to this user (uid ${uid})`);
  if ((d.mode & 0o077) !== 0) throw new UntrustedEngineError(path, `its directory ${dir} is open to other users (mode ${(d.mode & 0o777).toString(8)}; it must be 700)`);
  const s = await lstat(path).catch(() => null);
  if (!s) throw new NoEngineError(path, 'missing');
  if (!s.isSocket()) throw new UntrustedEngineError(path, 'it is not a socket');
  if (s.uid !== uid) throw new UntrustedEngineError(path, `it belongs to uid ${s.uid}, not to this user (uid ${uid})`);
}

/** The uid of the process serving a connected socket (SO_PEERCRED), where hitch-native loads. */
async function peerUid(socket: Socket): Promise<number | null> {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return null;
  try {
    const { native } = await loadUnix();
    return native.peerCredentials(fd).uid;
  } catch {
    return null; // no native addon: the directory and socket checks above stand alone
  }
}

/** A socket to the engine serving `path`, checked to be this user's; NoEngineError when none serves it. */
async function openEngineSocket(path: string): Promise<Socket> {
  await checkSocketPlace(path);
  const socket = await new Promise<Socket>((resolve, reject) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') reject(new NoEngineError(path, 'missing'));
      else if (err.code === 'ECONNREFUSED') reject(new NoEngineError(path, 'stale'));
      else if (err.code === 'EACCES') reject(new Error(`Permission denied on ${path}: the engine there belongs to another user.`));
      else reject(new Error(`Cannot reach the Hitch engine at ${path}: ${err.message}`));
    });
  });
  const servedBy = await peerUid(socket);
  const uid = process.getuid?.();
  if (servedBy !== null && uid !== undefined && servedBy !== uid) {
    socket.destroy();
    throw new UntrustedEngineError(path, `it is served by a process of uid ${servedBy}, not of this user (uid ${uid})`);
  }
  return socket;
}

/** Reads the engine's messages off the socket: JSON lines, and binary frames of raw output. */
function readMessages(socket: Socket, onMessage: (message: unknown) => void, tooLong: () => void): void {
  socket.on(
    'data',
    messageReader(MAX_REPLY_BYTES, {
      line(line) {
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          return; // not JSON: nothing an engine sends
        }
        onMessage(message);
      },
      frame(header, data) {
        let event: { event?: unknown; payload?: Record<string, unknown> };
        try {
          event = JSON.parse(header) as typeof event;
        } catch {
          return;
        }
        if (event.event === 'session.data' && typeof event.payload === 'object') onMessage({ event: event.event, payload: { ...event.payload, data } });
      },
      refuse: tooLong,
    }),
  );
  socket.on('error', () => undefined);
}

/** Connects to the engine serving `path`; throws NoEngineError when none does. */
export async function connectEngineSocket(path: string): Promise<EngineConnection> {
  const socket = await openEngineSocket(path);
  socket.write(JSON.stringify(FRAMES_REQUEST) + '\n');
  const rpc = new RpcClient((message) => socket.write(JSON.stringify(message) + '\n'));
  readMessages(
    socket,
    (message) => rpc.receive(message),
    () => {
      rpc.lost('A message from the engine was too long.');
      socket.destroy();
    },
  );
  socket.on('close', () => rpc.lost(`The Hitch engine at ${path} closed the connection (it stopped).`));

  return {
    path,
    call: (method, params) => rpc.call(method, params),
    onEvent: (listener) => rpc.onEvent((event) => listener(event as unknown as HitchEvent)),
    onClose: (listener) => rpc.onClose(listener),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close() {
      socket.end();
      socket.destroy();
      rpc.lost('Closed.');
    },
  };
}

/**
 * One client's connection relayed to the engine serving `path` over a socket of its own, so
 * that the engine sees that client as it is (its sessions, its attachments): a web host or
 * desktop app that uses a running engine opens one per page. Requests wait for the socket.
 */
export function relayToEngineSocket(path: string, send: (message: Outgoing) => void): Connection {
  let closed = false;
  /** The client's transport is full: the engine's messages are not read (its own flow control then holds the sessions). */
  let full = false;
  const waiting: unknown[] = [];
  let socket: Socket | null = null;
  const lost = (message: string): void => {
    if (!closed) send({ id: null, ok: false, error: { code: 'network', message } });
  };
  openEngineSocket(path).then(
    (sock) => {
      if (closed) return void sock.destroy();
      socket = sock;
      if (full) sock.pause();
      readMessages(sock, (message) => !closed && send(message as Outgoing), () => (lost('A message from the engine was too long.'), sock.destroy()));
      sock.on('close', () => lost(`The Hitch engine at ${path} closed the connection (it stopped).`));
      for (const message of waiting.splice(0)) sock.write(JSON.stringify(message) + '\n');
    },
    (err: Error) => lost(`Cannot reach the Hitch engine: ${err.message}`),
  );
  return {
    request(message) {
      if (closed) return;
      if (socket) socket.write(JSON.stringify(message) + '\n');
      else waiting.push(message);
    },
    backpressure(on) {
      full = on;
      if (on) socket?.pause();
      else socket?.resume();
    },
    close() {
      closed = true;
      socket?.destroy();
    },
  };
}

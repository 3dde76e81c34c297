// The loopback web host: serves the built renderer and carries the API over a WebSocket.
// It binds 127.0.0.1 only, refuses requests whose Host or Origin header is not its own
// (DNS rebinding, cross-site pages) and requires a random token on every API connection and
// on the file routes (uploads and downloads through the browser, file-endpoints.ts).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Api, Connection, Outgoing } from '../api/connection';
import { isMethod, requestSchemas, wsRequestSchema } from '../../preload/api';
import type { Logger } from '../engine/log';
import { DownloadTickets, isFileRoute, serveFileRoute, type FileStreams } from './file-endpoints';

export interface WebHostOptions {
  /** Each page gets a connection of its own: its sessions, its attachments. */
  api: Api;
  /** The built renderer (out/renderer). */
  staticDir: string;
  log: Logger;
  port?: number;
  /** Fixed token (tests); a random one otherwise. */
  token?: string;
  /**
   * The engine's file streams, for uploads and downloads through the page (file-endpoints.ts):
   * the engine's own, or relayed-files.ts for an engine in another process. Absent: none.
   */
  files?: () => FileStreams | null;
}

export interface WebHost {
  url: string;
  port: number;
  token: string;
  /** Disconnects every page (they then offer to reload), e.g. when the engine behind was replaced. */
  dropClients(): void;
  close(): Promise<void>;
}

export const API_PATH = '/api';
const MAX_MESSAGE_BYTES = 1 << 20;
/**
 * Bytes queued for a page that does not read, before it is disconnected: it reconnects and
 * reattaches with the scrollback, instead of the engine buffering without bound.
 */
export const MAX_UNSENT_BYTES = 16 * 1024 * 1024;
/** Flow control: a page's sessions wait above this many characters unsent, and go on below the second. */
const FLOW_HIGH_WATER = 1 << 20;
const FLOW_LOW_WATER = 256 << 10;
/**
 * Requests the engine serves the desktop window and the `hitch` command but not a page: a page
 * never names files on this computer (it has no way to learn a path, and a stolen token must
 * not read or write them). Its uploads and downloads go through /files/upload and
 * /files/download, the browser's own file drop and save.
 */
const NOT_FOR_PAGES = new Set(['transfer.start']);

/** Where a page may have this computer listen: its loopback only. */
const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/;

function refusedToPages(message: unknown): Outgoing | null {
  if (typeof message !== 'object' || message === null) return null;
  const { id, method, params } = message as { id?: unknown; method?: unknown; params?: unknown };
  // A malformed envelope or request is answered as any other (bad-request), by the connection.
  if (typeof method !== 'string' || typeof id !== 'number' || !wsRequestSchema.safeParse(message).success) return null;
  if (!isMethod(method) || !requestSchemas[method].safeParse(params ?? {}).success) return null;
  const refuse = (why: string): Outgoing => ({ id, ok: false, error: { code: 'forbidden', message: why } });
  if (NOT_FOR_PAGES.has(method)) {
    return refuse(`${method} is not offered to a browser page: it names files on this computer. Upload and download through the file panel instead.`);
  }
  // A page opens forwards that listen on this computer's loopback only: never one reachable
  // from the network (the desktop window and `hitch forward` may, when the person asks).
  if (method === 'forwards.open' && typeof params === 'object' && params !== null) {
    const { kind, bindAddress } = params as { kind?: unknown; bindAddress?: unknown };
    if (kind !== 'remote' && typeof bindAddress === 'string' && !LOOPBACK.test(bindAddress)) {
      return refuse(`A browser page may only open forwards that listen on this computer's loopback, not on ${bindAddress}. Use the desktop app or hitch forward for that.`);
    }
  }
  return null;
}

/** A token given by the person (HITCH_WEB_TOKEN) must be at least this strong: 22 base64url characters carry 132 bits. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{22,256}$/;

/** Why a chosen token is refused, or null when it is strong enough. */
export function weakTokenReason(token: string): string | null {
  if (TOKEN_PATTERN.test(token)) return null;
  return 'HITCH_WEB_TOKEN must be 22 to 256 characters of A-Z, a-z, 0-9, "_" and "-" (at least 128 bits); for example: openssl rand -base64 24 | tr "+/" "-_"';
}

/** The policy the page runs under: no inline or foreign scripts, no foreign connections. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  // xterm.js and Svelte set element styles at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

function tokensEqual(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startWebHost(opts: WebHostOptions): Promise<WebHost> {
  const { api, log, staticDir } = opts;
  if (opts.token !== undefined) {
    const weak = weakTokenReason(opts.token);
    if (weak) throw new Error(weak);
  }
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const tickets = new DownloadTickets();
  // No limit on receiving a whole request (Node's default is 5 minutes): an upload's body is
  // the file, and a large one, or one paused while its master reconnects, takes longer. The
  // headers still have to come within a minute.
  const server = createServer({ requestTimeout: 0, headersTimeout: 60_000 });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  let port = 0;

  const allowedHosts = (): Set<string> => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = (): Set<string> => new Set([...allowedHosts()].map((h) => `http://${h}`));

  const refuse = (res: ServerResponse, status: number, message: string): void => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(message + '\n');
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!allowedHosts().has(req.headers.host ?? '')) {
      log.warn('web host refused request', { reason: 'foreign Host header', host: req.headers.host });
      refuse(res, 421, 'Hitch serves only 127.0.0.1 and localhost.');
      return;
    }
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      // serveStatic answers it
    }
    if (url && isFileRoute(url.pathname)) {
      void serveFileRoute(req, res, url, {
        log,
        tokenOk: (given) => tokensEqual(given, token),
        allowedOrigins,
        files: () => opts.files?.() ?? null,
        tickets,
      }).catch((err: Error) => {
        log.error('file request failed', { error: err.message });
        if (!res.headersSent) refuse(res, 500, 'Internal error.');
        else res.destroy();
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      refuse(res, 405, 'Method not allowed.');
      return;
    }
    void serveStatic(req, res);
  });

  const serveStatic = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      refuse(res, 400, 'Bad request.');
      return;
    }
    const relative = pathname === '/' ? 'index.html' : pathname.slice(1);
    const file = normalize(join(staticDir, relative));
    if (!file.startsWith(staticDir + sep)) {
      refuse(res, 404, 'Not found.');
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': MIME[extname(file)] ?? 'application/octet-stream',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      refuse(res, 404, 'Not found.');
    }
  };

  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    const deny = (status: number, reason: string): void => {
      log.warn('web host refused API connection', { reason });
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      // A client that never reads the refusal must not keep the socket open.
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      return deny(400, 'Bad Request');
    }
    if (url.pathname !== API_PATH) return deny(404, 'Not Found');
    if (!allowedHosts().has(req.headers.host ?? '')) return deny(421, 'Misdirected Request');
    // Browsers always send Origin on WebSocket handshakes; a page from elsewhere sends its own.
    if (!allowedOrigins().has(req.headers.origin ?? '')) return deny(403, 'Forbidden');
    if (!tokensEqual(url.searchParams.get('token'), token)) return deny(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => serveClient(ws));
  });

  const serveClient = (ws: WebSocket): void => {
    // Characters handed to the socket and not yet written out: past FLOW_HIGH_WATER the
    // sessions the page streams wait (their SSH channels are not read) until it drains below
    // FLOW_LOW_WATER, so a flood neither piles up here nor gets the page dropped.
    let unsent = 0;
    let full = false;
    const send = (message: unknown): void => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_UNSENT_BYTES) {
        log.warn('web client disconnected: it stopped reading', { unsentBytes: ws.bufferedAmount });
        ws.terminate();
        return;
      }
      const text = JSON.stringify(message);
      unsent += text.length;
      ws.send(text, () => {
        unsent -= text.length;
        if (full && unsent < FLOW_LOW_WATER) {
          full = false;
          connection.backpressure?.(false);
        }
      });
      if (!full && unsent > FLOW_HIGH_WATER) {
        full = true;
        connection.backpressure?.(true);
      }
    };
    const connection: Connection = api.openConnection(send);
    ws.on('close', (code, reason) => {
      log.info('web client disconnected', { code, reason: reason.toString() });
      connection.close();
    });
    ws.on('error', (err) => log.warn('web client error', { error: err.message }));
    ws.on('message', (raw, isBinary) => {
      let json: unknown;
      try {
        if (isBinary) throw new Error('binary frame');
        json = JSON.parse(raw.toString());
      } catch {
        send({ id: null, ok: false, error: { code: 'bad-request', message: 'Messages must be JSON text.' } });
        return;
      }
      const refused = refusedToPages(json);
      if (refused) {
        send(refused);
        return;
      }
      connection.request(json);
    });
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    dropClients: () => {
      for (const client of wss.clients) client.close(1012, 'engine replaced');
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

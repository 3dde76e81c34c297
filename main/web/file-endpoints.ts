// The web host's two plain-HTTP routes for files, beside the API's WebSocket: a page cannot
// hand the browser's own file drop or save dialog to a JSON message, so uploads stream in as
// a PUT body and downloads stream out as an attachment, each straight into or out of the
// engine's SFTP transfer (uploadFromStream/downloadToStream), never held whole in memory.
// Access is checked as for the API (token, Host, and Origin when the browser sends one);
// the token comes in the Authorization header, or in the query for a person's own `curl`, and
// is never logged. A page's download is a link, which a browser follows without headers of
// ours: the page first asks for a ticket (POST /files/ticket, token in the header), and the
// link carries that instead. A ticket names one file, is good once, for a minute: the
// browser's download list keeps the link, and the token must not be in it.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { transferEnded, type HitchEvent, type TransferView } from '../../preload/api';
import { FILE_ROUTES, type ErrorCode } from '../../preload/channels';
import { toHitchError, type HitchError } from '../engine/errors';
import type { Logger } from '../engine/log';

const { download: DOWNLOAD_PATH, upload: UPLOAD_PATH, ticket: TICKET_PATH } = FILE_ROUTES;

/** How long a download ticket stays good, unused. */
const TICKET_MS = 60_000;

/** Download tickets of one web host: each names a file, and is taken by its first use. */
export class DownloadTickets {
  private readonly tickets = new Map<string, { host: string; path: string; expires: number }>();

  issue(host: string, path: string, now = Date.now()): string {
    for (const [ticket, t] of this.tickets) if (t.expires <= now) this.tickets.delete(ticket);
    const ticket = randomBytes(24).toString('base64url');
    this.tickets.set(ticket, { host, path, expires: now + TICKET_MS });
    return ticket;
  }

  /** The file a ticket names, once; null for a ticket unknown, used or expired. */
  take(ticket: string, now = Date.now()): { host: string; path: string; expires: number } | null {
    const t = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    return t && t.expires > now ? t : null;
  }

  /** A ticket whose download failed before its first byte is good again, until it would have lapsed: the browser may retry it. */
  giveBack(ticket: string, file: { host: string; path: string; expires: number }): void {
    this.tickets.set(ticket, file);
  }
}

/** What the engine offers for streams from and to a page (main/engine/engine.ts). */
export interface FileStreams {
  /** `size` bytes of `body` to `name` in the directory `remotePath`; resolves once queued. */
  uploadFromStream(opts: {
    hostId: string;
    remotePath: string;
    name: string;
    size: number;
    body: Readable;
    ifExists: 'fail' | 'replace';
  }): Promise<TransferView>;
  downloadToStream(opts: { hostId: string; remotePath: string }): Promise<{ transfer: TransferView; size: number; name: string; body: Readable }>;
  cancelTransfer(transferId: string): void;
  /** The engine's events: an upload is answered once its transfer has ended. */
  onEvent(listener: (event: HitchEvent) => void): () => void;
}

/** The same rules as the API's `hostId` and `remotePath` (preload/api.ts). */
const hostId = z.string().min(1).max(255).regex(/^[^\s\0]+$/, 'a host alias has no spaces');
const remotePath = z.string().min(1).max(4096).regex(/^[^\0]*$/, 'a path has no NUL characters');
const downloadQuery = z.object({ host: hostId, path: remotePath, token: z.string().optional() }).strict();
const ticketQuery = z.object({ ticket: z.string().regex(/^[A-Za-z0-9_-]{32}$/, 'not a ticket') }).strict();
const uploadQuery = z
  .object({ host: hostId, path: remotePath, ifExists: z.enum(['fail', 'replace']).optional(), token: z.string().optional() })
  .strict();

/** HTTP status per engine error code: what a browser (or curl) makes of it. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  'bad-request': 400,
  'unknown-host': 404,
  'not-found': 404,
  'permission-denied': 403,
  exists: 409,
  cancelled: 409,
  'not-connected': 503,
  network: 502,
  timeout: 504,
  auth: 502,
  sftp: 502,
  channel: 502,
  'max-sessions': 503,
};

export interface FileRouteContext {
  log: Logger;
  /** Whether the request carries the web host's token (compared in constant time). */
  tokenOk(given: string | null): boolean;
  /** Origins of the page this web host serves. */
  allowedOrigins(): Set<string>;
  /** The engine's streams (its own, or relayed-files.ts for an engine elsewhere); null: none. */
  files(): FileStreams | null;
  tickets: DownloadTickets;
}

export function isFileRoute(pathname: string): boolean {
  return pathname === DOWNLOAD_PATH || pathname === UPLOAD_PATH || pathname === TICKET_PATH;
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: HitchError | { code: ErrorCode; message: string }, status?: number): void {
  sendJson(res, status ?? STATUS[err.code] ?? 500, { error: { code: err.code, message: err.message } });
}

/** `attachment` with the name as it is (RFC 6266 `filename*`) and a plain-ASCII fallback for old clients. */
export function contentDisposition(name: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f/\\]/g, '_') || 'download';
  const ascii = clean.replace(/[^\x20-\x7e]/g, '_').replace(/["%]/g, '_');
  const encoded = encodeURIComponent(clean).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export async function serveFileRoute(req: IncomingMessage, res: ServerResponse, url: URL, ctx: FileRouteContext): Promise<void> {
  const refuse = (status: number, code: ErrorCode, message: string, reason: string): void => {
    // The reason only: the URL carries the token.
    ctx.log.warn('web host refused file request', { route: url.pathname, reason });
    sendError(res, { code, message }, status);
    // An upload refused before its body was read: read it to the end (and drop it), so the
    // browser gets to read the answer instead of a reset connection.
    req.resume();
  };

  const upload = url.pathname === UPLOAD_PATH;
  const issuing = url.pathname === TICKET_PATH;
  const wanted = upload ? 'PUT' : issuing ? 'POST' : 'GET';
  if (req.method !== wanted) {
    return refuse(405, 'bad-request', `${url.pathname} takes ${wanted} requests only.`, 'method');
  }
  // Browsers send Origin with every PUT (and with a cross-site GET's fetch): a page from
  // elsewhere must not use the person's token-bearing session.
  const origin = req.headers.origin;
  if (origin !== undefined && !ctx.allowedOrigins().has(origin)) {
    return refuse(403, 'forbidden', 'Requests from other sites are refused.', 'foreign Origin');
  }
  // Fetch metadata, where the browser sends it: only this page (or the person, typing or
  // following the link) may ask, never another site's page or frame.
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return refuse(403, 'forbidden', 'Requests from other sites are refused.', 'cross-site');
  }
  const query = Object.fromEntries(url.searchParams);
  // A download by ticket: the ticket stands for the token, and names the file itself.
  const byTicket = !upload && !issuing && url.searchParams.has('ticket');
  if (byTicket) {
    const parsed = ticketQuery.safeParse(query);
    const ticket = parsed.success ? parsed.data.ticket : '';
    const file = parsed.success ? ctx.tickets.take(ticket) : null;
    if (!file) return refuse(401, 'forbidden', 'This download link is used or expired: start the download again from the page.', 'ticket');
    if (!(await sendDownload(res, file.host, file.path, ctx))) ctx.tickets.giveBack(ticket, file);
    return;
  }
  const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
  if (!ctx.tokenOk(bearer ?? url.searchParams.get('token'))) {
    return refuse(401, 'forbidden', 'This needs the access token of the page the web host printed.', 'token');
  }

  const parsed = (upload ? uploadQuery : downloadQuery).safeParse(query);
  if (!parsed.success || url.searchParams.getAll('path').length > 1 || url.searchParams.getAll('host').length > 1) {
    const issue = parsed.success ? undefined : parsed.error.issues[0];
    const where = issue?.path.length ? ` at "${issue.path.join('.')}"` : '';
    return refuse(400, 'bad-request', `Invalid query${where}: ${issue?.message ?? 'each parameter once'}. Expected ?host=HOST&path=PATH${upload ? '&ifExists=fail|replace' : ''}.`, 'query');
  }
  if (issuing) {
    const { host, path } = parsed.data as z.infer<typeof downloadQuery>;
    return sendJson(res, 200, { ticket: ctx.tickets.issue(host, path) });
  }
  const files = ctx.files();
  if (!files) {
    return refuse(
      501,
      'internal',
      'This web host was started without file transfers: use the desktop app or `hitch cp`.',
      'no file streams',
    );
  }

  if (upload) {
    const { host, path, ifExists } = parsed.data as z.infer<typeof uploadQuery>;
    const lengthHeader = req.headers['content-length'];
    const size = lengthHeader !== undefined && /^\d{1,16}$/.test(lengthHeader) ? Number(lengthHeader) : NaN;
    if (!Number.isSafeInteger(size)) {
      return refuse(411, 'bad-request', 'An upload needs a Content-Length: the file is sent as it is, in one body.', 'length');
    }
    // The engine takes the folder and the name apart (a folder given whole takes the name inside it).
    const trimmed = path.replace(/\/+$/, '');
    const cut = trimmed.lastIndexOf('/');
    const folder = cut < 0 ? '.' : cut === 0 ? '/' : trimmed.slice(0, cut);
    const name = trimmed.slice(cut + 1);
    if (name === '' || name === '.' || name === '..') {
      return refuse(400, 'bad-request', `"${path}" does not end in a file name.`, 'query');
    }
    // The transfer's end, heard from the engine's events: from before it is queued, so none is missed.
    const ended = new Map<string, TransferView>();
    let waiting: { id: string; resolve: (view: TransferView) => void } | null = null;
    const unsubscribe = files.onEvent((event) => {
      if (event.event !== 'transfer.changed' || !transferEnded(event.payload)) return;
      if (waiting?.id === event.payload.id) waiting.resolve(event.payload);
      else ended.set(event.payload.id, event.payload);
    });
    /**
     * Answers, then lets go of a body not read to its end: the connection closes once the answer
     * is out (the body once read from is not drained by Node, and requests have no timeout here,
     * so a page still sending would otherwise wait for ever).
     */
    const answer = (send: () => void): void => {
      if (!req.complete) {
        res.setHeader('connection', 'close');
        res.once('finish', () => req.destroy());
      }
      send();
    };
    let transfer: TransferView;
    try {
      transfer = await files.uploadFromStream({ hostId: host, remotePath: folder, name, size, body: req, ifExists: ifExists ?? 'fail' });
    } catch (err) {
      unsubscribe();
      const error = toHitchError(err);
      if (error.code === 'internal') ctx.log.error('upload failed', { error: error.message });
      answer(() => sendError(res, error));
      return;
    }
    // The page went away (a closed tab, a cancel) before it had sent everything: the transfer ends with it.
    const gone = (): void => {
      if (!req.complete) {
        try {
          files.cancelTransfer(transfer.id);
        } catch {
          // ended already
        }
      }
    };
    req.once('close', gone);
    const last = ended.get(transfer.id) ?? (transferEnded(transfer) ? transfer : await new Promise<TransferView>((resolve) => (waiting = { id: transfer.id, resolve })));
    unsubscribe();
    req.off('close', gone);
    answer(() => {
      if (last.state === 'done') sendJson(res, 200, last);
      else sendError(res, last.state === 'cancelled' ? { code: 'cancelled', message: last.error ?? 'The upload was cancelled.' } : { code: 'sftp', message: last.error ?? 'The upload failed.' });
    });
    return;
  }

  const { host, path } = parsed.data as z.infer<typeof downloadQuery>;
  await sendDownload(res, host, path, ctx);
}

/** Streams `path` on `host` out as an attachment; false when it failed before its first byte. */
async function sendDownload(res: ServerResponse, host: string, path: string, ctx: FileRouteContext): Promise<boolean> {
  const files = ctx.files();
  if (!files) {
    sendError(res, { code: 'internal', message: 'This web host was started without file transfers: use the desktop app or `hitch cp`.' }, 501);
    return false;
  }
  let download: Awaited<ReturnType<FileStreams['downloadToStream']>>;
  try {
    download = await files.downloadToStream({ hostId: host, remotePath: path });
  } catch (err) {
    const error = toHitchError(err);
    if (error.code === 'internal') ctx.log.error('download failed', { error: error.message });
    sendError(res, error);
    return false;
  }
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': String(download.size),
    'content-disposition': contentDisposition(download.name),
    'content-security-policy': "default-src 'none'; sandbox",
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  });
  try {
    // Closing the page or cancelling the browser's download ends the pipeline, and so the transfer.
    await pipeline(download.body, res);
  } catch (err) {
    ctx.log.warn('download ended early', { transfer: download.transfer.id, error: toHitchError(err).message });
    download.body.destroy();
    res.destroy();
    try {
      files.cancelTransfer(download.transfer.id);
    } catch {
      // ended already
    }
  }
  return true;
}

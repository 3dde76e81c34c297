// Uploads and downloads in a browser, through the web host's file routes
// (main/web/file-endpoints.ts): the browser's own file drop streams up as a PUT body, and a
// download is the browser's own, from a link. The desktop app uses `transfer.start` with paths
// on this computer instead (preload/channels.ts DesktopFiles).
import type { ErrorInfo, TransferView } from '../../../preload/api';
import { FILE_ROUTES } from '../../../preload/channels';

const { download: DOWNLOAD_ROUTE, upload: UPLOAD_ROUTE, ticket: TICKET_ROUTE } = FILE_ROUTES;

/** A file route's refusal: the engine's code and sentence, or what went wrong on the way. */
export class FileRouteError extends Error {
  constructor(
    readonly code: ErrorInfo['code'] | 'aborted',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts the browser's own download of a file on the host (it saves it where the person's
 * downloads go). A link cannot carry headers, and the browser's download list keeps it: so
 * the link carries a ticket for this one file, asked for with the token in a header, and
 * never the token itself.
 */
export async function downloadInBrowser(token: string, hostId: string, path: string, name: string): Promise<void> {
  const query = new URLSearchParams({ host: hostId, path });
  let res: Response;
  try {
    res = await fetch(`${TICKET_ROUTE}?${query.toString()}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  } catch {
    throw new FileRouteError('network', 'The web host did not answer: is it still running?');
  }
  const body = (await res.json().catch(() => null)) as { ticket?: string; error?: ErrorInfo } | null;
  if (!res.ok || typeof body?.ticket !== 'string') {
    throw new FileRouteError(body?.error?.code ?? 'internal', body?.error?.message ?? `The web host answered ${res.status} ${res.statusText}.`);
  }
  const a = document.createElement('a');
  a.href = `${DOWNLOAD_ROUTE}?${new URLSearchParams({ ticket: body.ticket }).toString()}`;
  a.download = name;
  a.rel = 'noopener';
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
}

export interface BrowserUpload {
  /** The transfer as the engine ended it, or a FileRouteError. */
  done: Promise<TransferView>;
  /** Stops sending (the engine then ends its transfer as cancelled or failed). */
  abort(): void;
}

/**
 * Sends `file` to `path` on the host. XMLHttpRequest rather than fetch: it streams a File from
 * disk with a Content-Length and can be aborted, in every browser (fetch's streaming uploads
 * need HTTP/2 in Chromium). `onSent`: bytes handed to the web host so far.
 */
export function uploadInBrowser(
  token: string,
  hostId: string,
  path: string,
  file: Blob,
  ifExists: 'fail' | 'replace',
  onSent?: (bytes: number) => void,
): BrowserUpload {
  const xhr = new XMLHttpRequest();
  const query = new URLSearchParams({ host: hostId, path, ifExists });
  const done = new Promise<TransferView>((resolve, reject) => {
    xhr.open('PUT', `${UPLOAD_ROUTE}?${query.toString()}`);
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.responseType = 'text';
    xhr.upload.addEventListener('progress', (e) => onSent?.(e.loaded));
    xhr.addEventListener('load', () => {
      let body: unknown = null;
      try {
        body = JSON.parse(String(xhr.response));
      } catch {
        // not JSON: said below
      }
      if (xhr.status === 200 && body && typeof body === 'object' && 'id' in body) return resolve(body as TransferView);
      const error = (body as { error?: ErrorInfo } | null)?.error;
      reject(new FileRouteError(error?.code ?? 'internal', error?.message ?? `The web host answered ${xhr.status} ${xhr.statusText}.`));
    });
    xhr.addEventListener('error', () => reject(new FileRouteError('network', 'The upload broke off: is the web host still running?')));
    xhr.addEventListener('abort', () => reject(new FileRouteError('aborted', 'Upload cancelled.')));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

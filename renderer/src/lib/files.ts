// What the file browser and the transfer queue show, computed without the DOM: the order of a
// listing, which entries are hidden, paths on the host, and sizes, speeds and times as people
// read them. Kept apart from the components so it is tested on its own (tests/unit/files-ui.test.ts).
import type { FileEntry, TransferView } from '../../../preload/api';

export type SortKey = 'name' | 'size' | 'mtime' | 'permissions';
export interface SortOrder {
  key: SortKey;
  descending: boolean;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Directories first (as every file manager does), then by the key; ties by name, so the order is stable. */
export function sortEntries(entries: readonly FileEntry[], order: SortOrder): FileEntry[] {
  const sign = order.descending ? -1 : 1;
  const byKey = (a: FileEntry, b: FileEntry): number => {
    switch (order.key) {
      case 'size':
        return a.size - b.size;
      case 'mtime':
        return a.mtime - b.mtime;
      case 'permissions':
        return a.permissions < b.permissions ? -1 : a.permissions > b.permissions ? 1 : 0;
      case 'name':
        return collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    }
  };
  return [...entries].sort((a, b) => {
    const dirs = Number(isDirectory(b)) - Number(isDirectory(a));
    if (dirs !== 0) return dirs;
    return sign * byKey(a, b) || collator.compare(a.name, b.name);
  });
}

/** A click on a column header: the same column turns the order round, another starts ascending (dates and sizes newest/largest first). */
export function nextOrder(current: SortOrder, key: SortKey): SortOrder {
  if (current.key === key) return { key, descending: !current.descending };
  return { key, descending: key === 'mtime' || key === 'size' };
}

/** Dot files, as `ls` hides them. */
export function isHidden(entry: Pick<FileEntry, 'name'>): boolean {
  return entry.name.startsWith('.');
}

export function visibleEntries(entries: readonly FileEntry[], showHidden: boolean): FileEntry[] {
  return showHidden ? [...entries] : entries.filter((e) => !isHidden(e));
}

/** A symlink may point at a directory; the listing says so in its mode only for real directories. */
export function isDirectory(entry: Pick<FileEntry, 'type'>): boolean {
  return entry.type === 'directory';
}

/** `dir` + `name` on the host (POSIX paths; SFTP servers take them as they are). */
export function joinPath(dir: string, name: string): string {
  if (name.startsWith('/')) return name;
  return dir === '/' ? `/${name}` : `${dir.replace(/\/+$/, '')}/${name}`;
}

/** The directory above `path`; `/` stays `/`. */
export function parentPath(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed === '') return '/';
  const i = trimmed.lastIndexOf('/');
  if (i < 0) return '.';
  return i === 0 ? '/' : trimmed.slice(0, i);
}

/** The last part of a path: what a file is called. */
export function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1) || '/';
}

/**
 * Why a name typed for a new folder or a rename cannot be used, or null when it can. A name
 * is one path part: a slash would move the file elsewhere, which rename does not promise.
 */
export function nameProblem(name: string): string | null {
  if (name.trim() === '') return 'Type a name.';
  if (name === '.' || name === '..') return `"${name}" is not a name a file can have.`;
  if (name.includes('/')) return 'A name cannot contain "/".';
  if (name.includes('\0')) return 'A name cannot contain a NUL character.';
  return null;
}

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes as people read them: `812 B`, `1.5 KiB`, `98.2 MiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${Math.round(n)} B`;
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${UNITS[unit]}`;
}

export function formatSpeed(bytesPerSecond: number): string {
  return bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '';
}

/** A modification time: the time of day for today, the date otherwise (`ls -l` does much the same). */
export function formatTime(mtime: number, now: number = Date.now()): string {
  const date = new Date(mtime);
  const today = new Date(now);
  const sameDay = date.getFullYear() === today.getFullYear() && date.getMonth() === today.getMonth() && date.getDate() === today.getDate();
  const pad = (v: number): string => String(v).padStart(2, '0');
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return sameDay ? time : `${day} ${time}`;
}

/** How far a transfer is, 0 to 1; null while its size is not known. */
export function progressOf(t: Pick<TransferView, 'done' | 'size' | 'state'>): number | null {
  if (t.state === 'done') return 1;
  if (t.size === null) return null;
  if (t.size === 0) return t.state === 'running' ? 0 : null;
  return Math.min(1, t.done / t.size);
}

const STATE_LABEL: Record<TransferView['state'], string> = {
  queued: 'queued',
  running: 'running',
  waiting: 'reconnecting…',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
};

export function transferStateLabel(state: TransferView['state']): string {
  return STATE_LABEL[state];
}

/** Whether the queue can still cancel it. */
export function isActive(t: Pick<TransferView, 'state'>): boolean {
  return t.state === 'queued' || t.state === 'running' || t.state === 'waiting';
}

/** `12.0 MiB of 100 MiB`, or what is known of it. */
export function transferAmount(t: Pick<TransferView, 'done' | 'size'>): string {
  return t.size === null ? formatBytes(t.done) : `${formatBytes(t.done)} of ${formatBytes(t.size)}`;
}

/** Running ones first, then the newest: what the queue shows on top. */
export function queueOrder(transfers: readonly TransferView[]): TransferView[] {
  const rank = (t: TransferView): number => (isActive(t) ? 0 : 1);
  return [...transfers].sort((a, b) => rank(a) - rank(b) || b.startedAt - a.startedAt || (a.id < b.id ? 1 : -1));
}

/**
 * Content-Disposition's file name as the web host sends it, for a check in tests and for
 * the download link's `download` attribute: the name without characters a file system or
 * the header would refuse.
 */
export function safeDownloadName(name: string): string {
  const cleaned = name.replace(/[\u0000-\u001f\u007f/\\]/g, '_');
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'download' : cleaned;
}

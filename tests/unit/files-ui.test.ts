// The file browser's listing order, paths and the numbers the transfer queue shows
// (renderer/src/lib/files.ts), as a person reads them.
import { describe, expect, it } from 'vitest';
import type { FileEntry, TransferView } from '../../preload/api';
import {
  baseName,
  formatBytes,
  formatSpeed,
  formatTime,
  isActive,
  joinPath,
  nameProblem,
  nextOrder,
  parentPath,
  progressOf,
  queueOrder,
  safeDownloadName,
  sortEntries,
  transferAmount,
  transferStateLabel,
  visibleEntries,
} from '../../renderer/src/lib/files';

const entry = (name: string, type: FileEntry['type'], size = 0, mtime = 0, permissions = '-rw-r--r--'): FileEntry => ({
  name,
  type,
  size,
  mtime,
  mode: 0,
  permissions,
  uid: 1000,
  gid: 1000,
});

const listing = [
  entry('zeta.txt', 'file', 10, 3000),
  entry('alpha', 'directory', 4096, 1000, 'drwxr-xr-x'),
  entry('file10', 'file', 2000, 2000),
  entry('.profile', 'file', 807, 500),
  entry('file9', 'file', 300, 4000, '-rwx------'),
  entry('Beta', 'directory', 4096, 5000, 'drwx------'),
  entry('link', 'symlink', 7, 100, 'lrwxrwxrwx'),
];
const names = (entries: FileEntry[]): string[] => entries.map((e) => e.name);

describe('sorting a listing', () => {
  it('puts folders first, then names in natural order, case aside', () => {
    expect(names(sortEntries(listing, { key: 'name', descending: false }))).toEqual(['alpha', 'Beta', '.profile', 'file9', 'file10', 'link', 'zeta.txt']);
  });

  it('turns the order round on the same key, folders still first', () => {
    expect(names(sortEntries(listing, { key: 'name', descending: true }))).toEqual(['Beta', 'alpha', 'zeta.txt', 'link', 'file10', 'file9', '.profile']);
  });

  it('sorts by size, by time and by permissions', () => {
    expect(names(sortEntries(listing, { key: 'size', descending: true })).slice(2)).toEqual(['file10', '.profile', 'file9', 'zeta.txt', 'link']);
    expect(names(sortEntries(listing, { key: 'mtime', descending: false })).slice(2)).toEqual(['link', '.profile', 'file10', 'zeta.txt', 'file9']);
    expect(names(sortEntries(listing, { key: 'permissions', descending: false })).slice(2)).toEqual(['.profile', 'file10', 'zeta.txt', 'file9', 'link']);
  });

  it('breaks ties by name, so equal sizes keep one order', () => {
    const same = [entry('b', 'file', 5), entry('a', 'file', 5), entry('c', 'file', 5)];
    expect(names(sortEntries(same, { key: 'size', descending: false }))).toEqual(['a', 'b', 'c']);
    expect(names(sortEntries(same, { key: 'size', descending: true }))).toEqual(['a', 'b', 'c']);
  });

  it('leaves the given list as it was', () => {
    const before = names(listing);
    sortEntries(listing, { key: 'size', descending: true });
    expect(names(listing)).toEqual(before);
  });

  it('a header click turns the same column round, and starts sizes and dates with the largest and newest', () => {
    expect(nextOrder({ key: 'name', descending: false }, 'name')).toEqual({ key: 'name', descending: true });
    expect(nextOrder({ key: 'name', descending: false }, 'mtime')).toEqual({ key: 'mtime', descending: true });
    expect(nextOrder({ key: 'size', descending: true }, 'permissions')).toEqual({ key: 'permissions', descending: false });
  });
});

describe('hidden files', () => {
  it('hides dot files unless asked', () => {
    expect(names(visibleEntries(listing, false))).not.toContain('.profile');
    expect(names(visibleEntries(listing, true))).toContain('.profile');
  });
});

describe('paths on the host', () => {
  it('joins, goes up and names', () => {
    expect(joinPath('/home/u', 'a b')).toBe('/home/u/a b');
    expect(joinPath('/home/u/', 'x')).toBe('/home/u/x');
    expect(joinPath('/', 'etc')).toBe('/etc');
    expect(joinPath('/home/u', '/abs')).toBe('/abs');
    expect(parentPath('/home/u')).toBe('/home');
    expect(parentPath('/home/u/')).toBe('/home');
    expect(parentPath('/home')).toBe('/');
    expect(parentPath('/')).toBe('/');
    expect(baseName('/home/u/file.txt')).toBe('file.txt');
    expect(baseName('/')).toBe('/');
  });

  it('refuses names that are not one path part', () => {
    expect(nameProblem('new folder')).toBeNull();
    expect(nameProblem('')).toMatch(/Type a name/);
    expect(nameProblem('  ')).toMatch(/Type a name/);
    expect(nameProblem('..')).toMatch(/not a name/);
    expect(nameProblem('a/b')).toMatch(/"\/"/);
    expect(nameProblem('a\0b')).toMatch(/NUL/);
  });

  it('makes a name safe to save under', () => {
    expect(safeDownloadName('report.pdf')).toBe('report.pdf');
    expect(safeDownloadName('a/b\\c\n')).toBe('a_b_c_');
    expect(safeDownloadName('..')).toBe('download');
  });
});

describe('numbers people read', () => {
  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(100 * 1024 * 1024)).toBe('100 MiB');
    expect(formatBytes(5.25 * 1024 ** 3)).toBe('5.3 GiB');
    expect(formatBytes(-1)).toBe('—');
    expect(formatSpeed(0)).toBe('');
    expect(formatSpeed(2 * 1024 * 1024)).toBe('2.0 MiB/s');
  });

  it('shows the time of day for today, the date before', () => {
    const now = new Date(2026, 11, 1, 18, 30).getTime();
    expect(formatTime(new Date(2026, 11, 1, 9, 5).getTime(), now)).toBe('09:05');
    expect(formatTime(new Date(2025, 0, 31, 23, 59).getTime(), now)).toBe('2025-01-31 23:59');
  });
});

const transfer = (over: Partial<TransferView>): TransferView => ({
  id: 't1',
  hostId: 'h',
  direction: 'upload',
  localPath: null,
  remotePath: '/tmp/x',
  name: 'x',
  size: 100,
  done: 0,
  state: 'running',
  error: null,
  bytesPerSecond: 0,
  startedAt: 0,
  endedAt: null,
  resumes: 0,
  ...over,
});

describe('the transfer queue', () => {
  it('shows progress, or none while the size is unknown', () => {
    expect(progressOf(transfer({ done: 25 }))).toBe(0.25);
    expect(progressOf(transfer({ size: null, done: 25 }))).toBeNull();
    expect(progressOf(transfer({ size: 0, state: 'done', done: 0 }))).toBe(1);
    expect(progressOf(transfer({ done: 200 }))).toBe(1);
    expect(transferAmount(transfer({ done: 1024, size: 2048 }))).toBe('1.0 KiB of 2.0 KiB');
    expect(transferAmount(transfer({ done: 512, size: null }))).toBe('512 B');
  });

  it('names every state, the waiting one as the reconnect it is', () => {
    expect(transferStateLabel('waiting')).toBe('reconnecting…');
    expect(transferStateLabel('failed')).toBe('failed');
    expect([isActive(transfer({ state: 'queued' })), isActive(transfer({ state: 'waiting' })), isActive(transfer({ state: 'done' })), isActive(transfer({ state: 'cancelled' }))]).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  it('lists what is under way first, then the newest', () => {
    const order = queueOrder([
      transfer({ id: 't1', state: 'done', startedAt: 1 }),
      transfer({ id: 't2', state: 'running', startedAt: 2 }),
      transfer({ id: 't3', state: 'failed', startedAt: 3 }),
      transfer({ id: 't4', state: 'queued', startedAt: 4 }),
    ]);
    expect(order.map((t) => t.id)).toEqual(['t4', 't2', 't3', 't1']);
  });
});

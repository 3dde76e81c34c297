// `hitch cp [--json] [-r] [--force|--resume] SRC... DST`: copies files to or from a host over
// its master, like scp, where exactly one side is HOST:PATH. The engine does the copying (it
// runs as the same user and reads and writes the local files itself): this command resolves
// the paths (with -r, every file under a directory, making its directories on the other
// side), queues one transfer at a time, draws a progress line on a terminal, and waits; a
// network drop in the middle is the engine's to ride out, the command just waits longer.
import { lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { basename, join, posix, resolve } from 'node:path';
import type { DirectoryView, TransferView } from '../../preload/api';
import { CliError, USAGE_STATUS, type Context } from './context';
import { canAskPerson, confirm, mastersOf, withPrompts } from './prompts';
import type { Output } from './schemas';
import { safeForTerminal } from './terminal-text';

export interface CpOptions {
  force?: boolean | undefined;
  resume?: boolean | undefined;
  /** -r: directories with everything in them, as scp -r. */
  recursive?: boolean | undefined;
}

/**
 * One file to copy: its path here and on the host (a directory there: the file keeps its
 * name), or with `exact` (files of a tree) the file's own path, never a directory to go into.
 */
interface Job {
  localPath: string;
  remotePath: string;
  exact?: boolean;
}

/** A directory's contents, relative paths: its directories (parents first) and its regular files. */
interface Tree {
  dirs: string[];
  files: string[];
}

/** How deep a tree is followed: a server that lists directories without end stops here. */
const MAX_DEPTH = 64;

type Side = { remote: false; path: string } | { remote: true; host: string; path: string };

/**
 * As scp reads an argument: `HOST:PATH` is remote when the colon comes before any slash
 * (`HOST:` alone is the login directory); anything else is a local path.
 */
export function parseSide(arg: string): Side {
  const m = /^([^/:]+):(.*)$/s.exec(arg);
  if (!m) return { remote: false, path: arg };
  return { remote: true, host: m[1]!, path: m[2] === '' ? '.' : m[2]! };
}

function usage(message: string): CliError {
  return new CliError(`${message} (usage: hitch cp [--json] [-r] [--force|--resume] SRC... DST, one side HOST:PATH)`, USAGE_STATUS);
}

/** 1.5 MiB, 230 B… */
export function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function durationText(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** The progress line: name, percent, size, speed, ETA (or how long it took, at the end). */
function progressLine(t: TransferView): string {
  const size = t.size ?? 0;
  const percent = size > 0 ? Math.floor((t.done * 100) / size) : 100;
  const elapsed = ((t.endedAt ?? Date.now()) - t.startedAt) / 1000;
  let tail: string;
  if (t.state === 'waiting') tail = 'waiting for the connection…';
  else if (t.state === 'queued') tail = 'queued';
  else if (t.state === 'done') tail = `${bytesText(elapsed > 0 ? size / elapsed : size)}/s  ${durationText(elapsed)}`;
  else tail = `${bytesText(t.bytesPerSecond)}/s  ETA ${t.bytesPerSecond > 0 ? durationText((size - t.done) / t.bytesPerSecond) : '--:--'}`;
  const name = safeForTerminal(t.name);
  return `${name.length > 40 ? '…' + name.slice(-39) : name}  ${String(percent).padStart(3)}%  ${bytesText(t.done)}/${bytesText(size)}  ${tail}`;
}

export async function cpCommand(ctx: Context, args: string[], opts: CpOptions): Promise<number> {
  if (args.length < 2) throw usage('cp needs a source and a destination');
  if (opts.force && opts.resume) throw usage('--force and --resume cannot be combined');
  const sides = args.map(parseSide);
  const dst = sides.pop()!;
  const remoteSrc = sides.filter((s) => s.remote);
  if (dst.remote && remoteSrc.length > 0) throw usage('copying from one host to another is not supported: one side must be local');
  if (!dst.remote && remoteSrc.length === 0) throw usage('one side must be HOST:PATH');
  if (!dst.remote && remoteSrc.length !== sides.length) throw usage('the sources must all be on the host, or all on this computer');
  const hosts = new Set(remoteSrc.map((s) => (s.remote ? s.host : '')));
  if (hosts.size > 1) throw usage('the sources must all be on one host');
  const host = dst.remote ? dst.host : [...hosts][0]!;
  const direction = dst.remote ? 'upload' : 'download';
  const ifExists = opts.force ? 'replace' : opts.resume ? 'resume' : 'fail';

  // Watching the state brings the transfers' progress events.
  const state = await ctx.call('state.get', { watch: true });
  if (!state.catalog.hosts.some((h) => h.id === host)) throw new CliError(`no host "${host}" in ${state.catalog.configPath} or in Hitch.`);
  const client = await ctx.client();
  const latest = new Map<string, TransferView>();
  let wake: (() => void) | null = null;
  const offChanged = client.on('transfer.changed', (view) => {
    latest.set(view.id, view);
    wake?.();
  });
  let engineGone = false;
  const offClosed = client.on('transport.closed', () => {
    engineGone = true;
    wake?.();
  });

  // Calls that may connect the master, asking what the login needs.
  const onHost = <M extends 'files.list' | 'files.mkdir' | 'transfer.start'>(method: M, params: Parameters<typeof ctx.call<M>>[1]) =>
    withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => ctx.call(method, params));
  /** A directory on the host, listed; null when the path is not one (any other failure is said as it is). */
  const remoteDir = (path: string) =>
    onHost('files.list', { hostId: host, path }).catch((err: unknown) =>
      err instanceof CliError && (err.code === 'not-found' || err.code === 'bad-request') ? null : Promise.reject(err),
    );
  const localDir = (path: string): Promise<boolean> => stat(path).then((s) => s.isDirectory(), () => false);
  /** Makes a directory on the host; one there already will do, unless it is a symlink (never followed). */
  const makeRemoteDir = async (path: string): Promise<void> => {
    try {
      await onHost('files.mkdir', { hostId: host, path });
    } catch (err) {
      if (!(err instanceof CliError && err.code === 'exists')) throw err;
      const parent = await remoteDir(posix.dirname(path));
      const entry = parent?.entries.find((e) => e.name === posix.basename(path));
      if (entry?.type === 'symlink') throw new CliError(`${host}:${path} is a symlink: not followed; copy into a directory instead.`);
      if (entry?.type !== 'directory') throw new CliError(`${host}:${path} exists and is not a directory.`);
    }
  };

  // Several sources go into a directory, under their own names; so does a directory copied
  // into one that is there already (scp -r's rule: else the copy is made under DST's name).
  // Asked only then: a single file finds out in the engine (a folder one may write to but not
  // list, such as a drop folder, takes uploads too).
  let dstIsDirKnown: boolean | null = null;
  const dstIsDir = async (): Promise<boolean> =>
    (dstIsDirKnown ??= dst.remote ? (await remoteDir(dst.path)) !== null : await localDir(resolve(dst.path)));
  if (sides.length > 1 && !(await dstIsDir())) throw new CliError(`${dst.remote ? `${host}:` : ''}${dst.path} is not a directory: copying several files needs one.`);

  const jobs: Job[] = [];
  const skipped: string[] = [];
  for (const src of sides) {
    if (dst.remote) {
      const path = resolve(src.path);
      if (!(await localDir(path))) {
        jobs.push({ localPath: path, remotePath: dst.path });
        continue;
      }
      if (!opts.recursive) throw new CliError(`${src.path} is a directory: use -r to copy it with everything in it.`);
      const root = (await dstIsDir()) ? posix.join(dst.path, basename(path)) : dst.path;
      // The whole tree is read before anything is made: a copy into the tree itself ends.
      const tree = await localTree(path, skipped);
      for (const dir of ['', ...tree.dirs]) await makeRemoteDir(posix.join(root, dir));
      for (const file of tree.files) jobs.push({ localPath: join(path, file), remotePath: posix.join(root, file), exact: true });
    } else {
      const listed = await remoteDir(src.path);
      if (!listed) {
        jobs.push({ localPath: resolve(dst.path), remotePath: src.path });
        continue;
      }
      if (!opts.recursive) throw new CliError(`${host}:${src.path} is a directory: use -r to copy it with everything in it.`);
      // Named as asked (a symlink's name, not its target's), as scp does.
      const asked = posix.basename(src.path.replace(/\/+$/, ''));
      const name = asked === '' || asked === '.' || asked === '..' ? posix.basename(listed.path) || 'root' : asked;
      const root = (await dstIsDir()) ? join(resolve(dst.path), name) : resolve(dst.path);
      const tree = await remoteTree(listed, skipped, remoteDir);
      for (const dir of ['', ...tree.dirs]) await makeLocalDir(join(root, dir));
      for (const file of tree.files) jobs.push({ localPath: join(root, file), remotePath: posix.join(listed.path, file), exact: true });
    }
  }
  for (const path of skipped) process.stderr.write(`hitch: skipped ${safeForTerminal(path)}: not a regular file or directory (symlinks are not followed)\n`);

  const showProgress = !ctx.json && process.stderr.isTTY === true;
  let current: string | null = null;
  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    if (current) void ctx.call('transfer.cancel', { transferId: current }).catch(() => undefined);
    wake?.();
  };
  process.on('SIGINT', onSigint);
  const done: Output<'cp'>['transfers'] = [];
  try {
    for (const { localPath, remotePath, exact } of jobs) {
      if (interrupted) break;
      const start = (mode: 'fail' | 'replace' | 'resume'): Promise<TransferView> => onHost('transfer.start', { hostId: host, direction, localPath, remotePath, ifExists: mode, ...(exact ? { exact } : {}) });
      let transfer: TransferView;
      try {
        transfer = await start(ifExists);
      } catch (err) {
        if (!(err instanceof CliError && err.code === 'exists' && ifExists === 'fail')) throw err;
        const what = err.message.replace(/;.*$/, '').replace(/\.$/, '');
        if (ctx.json || !canAskPerson(ctx)) throw new CliError(`${what}: use --force to replace it, or --resume to go on from its end.`, 1, 'exists');
        if (!(await confirm(`hitch: ${safeForTerminal(what)}; overwrite? [y/N] `))) throw new CliError('not overwritten.', 1, 'exists');
        transfer = await start('replace');
      }
      current = transfer.id;
      if (interrupted) void ctx.call('transfer.cancel', { transferId: current }).catch(() => undefined);
      latest.set(transfer.id, { ...transfer, ...latest.get(transfer.id) });
      let ended: TransferView;
      for (;;) {
        const view = latest.get(transfer.id)!;
        if (showProgress) process.stderr.write(`\r\x1b[K${progressLine(view)}`);
        if (view.state === 'done' || view.state === 'failed' || view.state === 'cancelled') {
          ended = view;
          break;
        }
        if (engineGone) throw new CliError('the engine went away during the copy.');
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
      current = null;
      if (showProgress) process.stderr.write('\n');
      if (ended.state === 'cancelled') throw new CliError(`${ended.name}: cancelled.`);
      if (ended.state === 'failed') throw new CliError(ended.error ?? `${ended.name}: the copy failed.`);
      const remote = `${host}:${ended.remotePath}`;
      done.push({
        id: ended.id,
        direction: ended.direction,
        host,
        source: ended.direction === 'upload' ? ended.localPath ?? localPath : remote,
        destination: ended.direction === 'upload' ? remote : ended.localPath ?? localPath,
        bytes: ended.size ?? ended.done,
        ms: (ended.endedAt ?? Date.now()) - ended.startedAt,
        resumes: ended.resumes,
      });
    }
  } finally {
    process.off('SIGINT', onSigint);
    offChanged();
    offClosed();
  }
  if (interrupted) throw new CliError('interrupted.');
  await ctx.print('cp', { transfers: done }, () => '');
  return 0;
}

/**
 * The local directory `root`'s tree, read whole. Symlinks are not followed (a link to a
 * parent would never end) and, like other special files, are skipped and put in `skipped`.
 */
async function localTree(root: string, skipped: string[]): Promise<Tree> {
  const tree: Tree = { dirs: [], files: [] };
  const walk = async (rel: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) throw new CliError(`${join(root, rel)}: more than ${MAX_DEPTH} directories deep.`);
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    for (const entry of entries.sort((a, b) => byName(a.name, b.name))) {
      const path = rel === '' ? entry.name : join(rel, entry.name);
      if (entry.isDirectory()) {
        tree.dirs.push(path);
        await walk(path, depth + 1);
      } else if (entry.isFile()) tree.files.push(path);
      else skipped.push(join(root, path));
    }
  };
  await walk('', 0);
  return tree;
}

/**
 * The listed host directory's tree, read whole. Names come from the host's listings, which
 * hold only plain names (no `/`, `.` or `..`): nothing lands outside the local root. Symlinks
 * are skipped, as are directories that cannot be listed.
 */
async function remoteTree(listed: DirectoryView, skipped: string[], list: (path: string) => Promise<DirectoryView | null>): Promise<Tree> {
  const tree: Tree = { dirs: [], files: [] };
  const walk = async (dir: DirectoryView, rel: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) throw new CliError(`${dir.path}: more than ${MAX_DEPTH} directories deep.`);
    for (const entry of [...dir.entries].sort((a, b) => byName(a.name, b.name))) {
      const path = rel === '' ? entry.name : posix.join(rel, entry.name);
      if (entry.type === 'directory') {
        const inner = await list(posix.join(listed.path, path));
        if (!inner) {
          skipped.push(posix.join(listed.path, path));
          continue;
        }
        tree.dirs.push(path);
        await walk(inner, path, depth + 1);
      } else if (entry.type === 'file') tree.files.push(path);
      else skipped.push(posix.join(listed.path, path));
    }
  };
  await walk(listed, '', 0);
  return tree;
}

/** Makes a directory here; one there already will do, unless it is a symlink (never followed). */
async function makeLocalDir(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new CliError(`cannot make the directory ${path}: ${(err as Error).message}`);
    const there = await lstat(path);
    if (there.isSymbolicLink()) throw new CliError(`${path} is a symlink: not followed; copy into a directory instead.`);
    if (!there.isDirectory()) throw new CliError(`${path} exists and is not a directory.`);
  }
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

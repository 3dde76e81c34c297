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

/** One file to copy: its path here and on the host (a directory there: the file keeps its name). */
interface Job {
  localPath: string;
  remotePath: string;
}

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

  // Several sources go into a directory, under their own names; so does a directory copied
  // into one that is there already (scp -r's rule: else the copy is made under DST's name).
  const dstIsDir = dst.remote ? (await remoteDir(dst.path)) !== null : await localDir(resolve(dst.path));
  if (sides.length > 1 && !dstIsDir) throw new CliError(`${dst.remote ? `${host}:` : ''}${dst.path} is not a directory: copying several files needs one.`);

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
      const root = dstIsDir ? posix.join(dst.path, basename(path)) : dst.path;
      await uploadTree(path, root, jobs, skipped, async (dir) => {
        try {
          await onHost('files.mkdir', { hostId: host, path: dir });
        } catch (err) {
          // There already: fine if it is a directory, as with mkdir -p.
          if (!(err instanceof CliError && err.code === 'exists' && (await remoteDir(dir)) !== null)) throw err;
        }
      });
    } else {
      const listed = await remoteDir(src.path);
      if (!listed) {
        jobs.push({ localPath: resolve(dst.path), remotePath: src.path });
        continue;
      }
      if (!opts.recursive) throw new CliError(`${host}:${src.path} is a directory: use -r to copy it with everything in it.`);
      const root = dstIsDir ? join(resolve(dst.path), posix.basename(listed.path) || 'root') : resolve(dst.path);
      await downloadTree(listed, root, jobs, skipped, remoteDir);
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
    for (const { localPath, remotePath } of jobs) {
      if (interrupted) break;
      const start = (mode: 'fail' | 'replace' | 'resume'): Promise<TransferView> => onHost('transfer.start', { hostId: host, direction, localPath, remotePath, ifExists: mode });
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
 * Every regular file under the local directory `dir`, to go under `remoteRoot` on the host,
 * whose directories `makeRemote` makes first (parents before children). Symlinks are not
 * followed (a link to a parent would never end) and, like other special files, are skipped.
 */
async function uploadTree(dir: string, remoteRoot: string, jobs: Job[], skipped: string[], makeRemote: (path: string) => Promise<void>): Promise<void> {
  await makeRemote(remoteRoot);
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const local = join(dir, entry.name);
    const remote = posix.join(remoteRoot, entry.name);
    if (entry.isDirectory()) await uploadTree(local, remote, jobs, skipped, makeRemote);
    else if (entry.isFile()) jobs.push({ localPath: local, remotePath: remote });
    else skipped.push(local);
  }
}

/**
 * Every regular file under the listed host directory, to go under `localRoot` here, whose
 * directories are made first. Names come from the host's listing, which holds only plain
 * names (no `/`, `.` or `..`): nothing lands outside `localRoot`. Symlinks are skipped.
 */
async function downloadTree(
  listed: DirectoryView,
  localRoot: string,
  jobs: Job[],
  skipped: string[],
  list: (path: string) => Promise<DirectoryView | null>,
): Promise<void> {
  try {
    await mkdir(localRoot, { recursive: true });
  } catch (err) {
    throw new CliError(`cannot make the directory ${localRoot}: ${(err as Error).message}`);
  }
  if (!(await lstat(localRoot)).isDirectory()) throw new CliError(`${localRoot} is not a directory.`);
  const entries = [...listed.entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const remote = posix.join(listed.path, entry.name);
    const local = join(localRoot, entry.name);
    if (entry.type === 'directory') {
      const inner = await list(remote);
      if (inner) await downloadTree(inner, local, jobs, skipped, list);
      else skipped.push(remote);
    } else if (entry.type === 'file') jobs.push({ localPath: local, remotePath: remote });
    else skipped.push(remote);
  }
}

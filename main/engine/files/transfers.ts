// The engine's transfer queue: files copied between this computer (or a browser, through the
// web host) and a host over its master's SFTP session, two at a time. Each transfer writes to
// NAME.hitch-part beside its destination and renames it into place at the end, so a half
// file never sits under the real name; `resume` goes on from that part file (or from an
// existing destination). When the master drops, a running transfer waits and goes on from
// the bytes done once the master is back; only a master closed for good fails it.
import type { Stats } from 'node:fs';
import { link, lstat, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Attributes } from 'ssh2';
import { transferEnded, type TransferView } from '../../../preload/api';
import { HitchError } from '../errors';
import type { HostMaster } from '../masters/host-master';
import type { Logger } from '../log';
import { fileSource, fileTarget, streamSource, streamTarget, type UploadSource } from './local-ends';
import { cancelledError, CHUNK_BYTES, pullRange, pushRange, REQUESTS_IN_FLIGHT, type PullTarget } from './pipeline';
import { baseName, isPlainName, joinRemote } from './remote-files';
import { SftpGone, type SftpSession } from './sftp-session';
import type { SftpSessions } from './sftp-sessions';

/**
 * Transfers running at once per master (each has many requests in flight already). Per
 * master, not in all: transfers waiting out one host's reconnect must not hold back another's.
 */
export const MAX_RUNNING = 2;
/** Ended transfers kept listed, newest last. */
export const MAX_ENDED = 50;
/** At most this many `transfer.changed` per second per transfer while it runs. */
const EVENT_INTERVAL_MS = 250;
/** Speed is measured over this last stretch. */
const SPEED_WINDOW_MS = 2_000;
/** Interruptions in a row, the master staying up and nothing copied in between, before it fails. */
const MAX_FRUITLESS_RETRIES = 5;
export const PART_SUFFIX = '.hitch-part';
/**
 * A resume from a part file goes back this far: the tail of a part file left by a copy that
 * did not end cleanly (Hitch killed, the computer off) may hold chunks written ahead of a gap,
 * and never more than the read-ahead (pipeline.ts) past it. Copied again, the tail is right.
 */
export const RESUME_OVERLAP = 2 * REQUESTS_IN_FLIGHT * CHUNK_BYTES;

export type IfExists = 'fail' | 'replace' | 'resume';

export interface TransferQueueDeps {
  log: Logger;
  sftp: SftpSessions;
  emit(view: TransferView): void;
}

/** This computer's side, as the transfer was asked for. */
type LocalSide =
  | { kind: 'file'; path: string }
  | { kind: 'stream-in'; body: Readable }
  | { kind: 'stream-out'; body: PassThrough };

interface Plan {
  hostId: string;
  master: HostMaster;
  direction: 'upload' | 'download';
  local: LocalSide;
  /** Absolute, the final name. */
  remotePath: string;
  name: string;
  size: number;
  /** Permission bits of the source, kept on the copy. */
  mode: number;
  ifExists: IfExists;
  /** Bytes already there to go on from (resume), 0 otherwise. */
  startAt: number;
  /** The destination exists now and was not asked to be kept: replaced at the end. */
  replaces: boolean;
  /**
   * Resumed from the destination itself (no part file was there): written in place, from its
   * end, as `sftp reget`/`reput` do. It is the person's file: never moved, never removed.
   */
  inPlace: boolean;
  /** In place: the destination's size before; never cut shorter than this. */
  keptSize: number;
}

function isInterruption(err: unknown): boolean {
  if (err instanceof SftpGone) return true;
  return err instanceof HitchError && ['not-connected', 'network', 'timeout', 'channel', 'max-sessions'].includes(err.code);
}

function localError(err: unknown, path: string): Error {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return new HitchError('not-found', `${path}: no such file or directory on this computer.`, { cause: err });
  if (e.code === 'EACCES' || e.code === 'EPERM') return new HitchError('permission-denied', `${path}: permission denied on this computer.`, { cause: err });
  if (e.code === 'EISDIR') return new HitchError('bad-request', `${path} is a directory: Hitch copies files.`, { cause: err });
  if (err instanceof HitchError) return err;
  return new HitchError('internal', `${path}: ${e.message}`, { cause: err });
}

async function localStatOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw localError(err, path);
  }
}

class Transfer {
  readonly view: TransferView;
  readonly abort = new AbortController();
  private samples: { at: number; done: number }[] = [];
  private lastEmit = 0;
  private emitTimer: NodeJS.Timeout | null = null;
  /** The local file while the transfer owns it. */
  private file: FileHandle | null = null;
  private source: UploadSource | null = null;
  /** Where a download's bytes go. */
  private target: PullTarget | null = null;

  constructor(
    id: string,
    readonly plan: Plan,
    private readonly deps: TransferQueueDeps,
  ) {
    this.view = {
      id,
      hostId: plan.hostId,
      direction: plan.direction,
      localPath: plan.local.kind === 'file' ? plan.local.path : null,
      remotePath: plan.remotePath,
      name: plan.name,
      size: plan.size,
      done: plan.startAt,
      state: 'queued',
      error: null,
      bytesPerSecond: 0,
      startedAt: Date.now(),
      endedAt: null,
      resumes: 0,
    };
  }

  /** The file written on the destination side until it is complete. */
  get partPath(): string | null {
    const suffix = this.plan.inPlace ? '' : PART_SUFFIX;
    if (this.plan.direction === 'upload') return this.plan.remotePath + suffix;
    return this.plan.local.kind === 'file' ? this.plan.local.path + suffix : null;
  }

  /** The destination, for "is something already writing there?". */
  get destination(): string {
    return this.plan.direction === 'upload' ? `remote ${this.plan.master.id} ${this.plan.remotePath}` : this.plan.local.kind === 'file' ? `local ${this.plan.local.path}` : `stream ${this.view.id}`;
  }

  get ended(): boolean {
    return transferEnded(this.view);
  }

  changed(force = false): void {
    if (this.emitTimer) clearTimeout(this.emitTimer);
    this.emitTimer = null;
    const wait = this.lastEmit + EVENT_INTERVAL_MS - Date.now();
    if (force || wait <= 0) {
      this.lastEmit = Date.now();
      this.deps.emit({ ...this.view });
    } else {
      this.emitTimer = setTimeout(() => this.changed(true), wait);
    }
  }

  private setState(state: TransferView['state'], error: string | null = null): void {
    this.view.state = state;
    this.view.error = error;
    if (state !== 'running') this.view.bytesPerSecond = 0;
    if (this.ended) this.view.endedAt = Date.now();
    this.changed(true);
  }

  private progress(done: number): void {
    const now = Date.now();
    this.view.done = done;
    this.samples.push({ at: now, done });
    while (this.samples.length > 2 && now - this.samples[0]!.at > SPEED_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    this.view.bytesPerSecond = now > first.at ? Math.round(((done - first.done) * 1000) / (now - first.at)) : 0;
    this.source?.release(done);
    this.changed();
  }

  /** Runs to the end: done, failed or cancelled; waits out reconnects on the way. */
  async run(): Promise<void> {
    const { master } = this.plan;
    master.transferStarted(); // no idle close under a transfer, nor of the connection its SFTP session is on
    let fruitless = 0;
    let interrupted = false;
    try {
      for (;;) {
        await this.masterReady();
        if (interrupted) this.view.resumes++;
        this.setState('running');
        const before = this.view.done;
        try {
          const sftp = await this.deps.sftp.of(master, this.plan.hostId);
          if (this.plan.direction === 'download') await this.download(sftp);
          else await this.upload(sftp);
          break;
        } catch (err) {
          if (this.abort.signal.aborted) throw cancelledError();
          // Whatever failed while the master was going down is the drop's doing.
          const masterDown = master.state !== 'ready' || master.readyConnections().length === 0;
          if (!isInterruption(err) && !masterDown) throw err;
          fruitless = this.view.done > before ? 0 : fruitless + 1;
          if (fruitless > MAX_FRUITLESS_RETRIES) throw err;
          interrupted = true;
          this.deps.log.info('transfer interrupted: waiting for the master', { transfer: this.view.id, done: this.view.done, error: (err as Error).message });
          this.setState('waiting', (err as Error).message);
          // The master hears of the drop just after its channels do: give it that moment.
          await new Promise((r) => setTimeout(r, 200 * Math.min(fruitless + 1, 5)));
        }
      }
      this.view.done = this.plan.size;
      this.setState('done');
      this.deps.log.info('transfer done', { transfer: this.view.id, direction: this.plan.direction, bytes: this.plan.size, resumes: this.view.resumes });
    } catch (err) {
      const cancelled = this.abort.signal.aborted;
      await this.cleanUp(cancelled);
      const error = err instanceof Error ? err : new Error(String(err));
      if (this.plan.local.kind === 'stream-out') this.plan.local.body.destroy(cancelled ? cancelledError() : error);
      this.setState(cancelled ? 'cancelled' : 'failed', cancelled ? null : error.message);
      this.deps.log.warn('transfer ended unfinished', { transfer: this.view.id, state: this.view.state, error: error.message });
    } finally {
      await this.file?.close().catch(() => undefined);
      this.file = null;
      master.transferEnded();
    }
  }

  /** Resolves once the master is ready; throws if it was closed for good or the transfer was cancelled. */
  private async masterReady(): Promise<void> {
    const { master, hostId } = this.plan;
    for (;;) {
      if (this.abort.signal.aborted) throw cancelledError();
      if (master.state === 'ready' && master.readyConnections().length > 0) return;
      if (master.state === 'closed' || master.state === 'failed') {
        const why = master.state === 'closed' ? 'was disconnected' : `could not reconnect (${master.error?.message ?? 'it gave up'})`;
        throw new HitchError('not-connected', `The connection to ${hostId} ${why}: the transfer stopped at ${this.view.done} of ${this.plan.size} bytes.`);
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          master.off('changed', done);
          this.abort.signal.removeEventListener('abort', done);
          resolve();
        };
        master.on('changed', done);
        this.abort.signal.addEventListener('abort', done);
      });
    }
  }

  private copyOptions(sftp: SftpSession, max: number) {
    return {
      sftp,
      from: this.view.done,
      size: this.plan.size,
      chunk: Math.max(1024, Math.min(CHUNK_BYTES, max)),
      depth: REQUESTS_IN_FLIGHT,
      signal: this.abort.signal,
      progress: (done: number) => this.progress(done),
    };
  }

  private async download(sftp: SftpSession): Promise<void> {
    const { plan } = this;
    this.target ??= await this.openDownloadTarget();
    const handle = await sftp.openFile(plan.remotePath, 'r');
    try {
      await pullRange({ ...this.copyOptions(sftp, sftp.limits.maxReadLength), handle, path: plan.remotePath, target: this.target });
    } finally {
      void sftp.closeHandle(handle, plan.remotePath).catch(() => undefined);
    }
    if (plan.local.kind === 'stream-out') {
      plan.local.body.end();
      return;
    }
    if (plan.local.kind !== 'file') return;
    const part = this.partPath!;
    await this.file!.chmod(plan.mode & 0o777);
    await this.file!.close();
    this.file = null;
    if (!plan.inPlace) await this.placeLocal(part, plan.local.path);
  }

  private async openDownloadTarget(): Promise<PullTarget> {
    const { plan } = this;
    if (plan.local.kind === 'stream-out') return streamTarget(plan.local.body);
    const part = this.partPath!;
    try {
      if (plan.startAt > 0) {
        // The part file (or the destination itself, resumed in place) holds the start already.
        this.file = await open(part, 'r+');
        if (!plan.inPlace) await this.file.truncate(plan.startAt);
      } else {
        this.file = await open(part, 'w', 0o600);
      }
    } catch (err) {
      throw localError(err, part);
    }
    return fileTarget(this.file);
  }

  /** The part file becomes the destination: never over a file that appeared meanwhile unless replacing was asked. */
  private async placeLocal(part: string, path: string): Promise<void> {
    try {
      if (this.plan.ifExists === 'fail') {
        await link(part, path); // fails if `path` exists, where rename would replace it
        await unlink(part);
      } else {
        await rename(part, path);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new HitchError('exists', `${path} appeared on this computer while it was being downloaded: kept, and the download left in ${part}.`);
      }
      throw localError(err, path);
    }
  }

  private async upload(sftp: SftpSession): Promise<void> {
    const { plan } = this;
    const part = this.partPath!;
    if (!this.source) {
      if (plan.local.kind === 'file') {
        try {
          this.file = await open(plan.local.path, 'r');
        } catch (err) {
          throw localError(err, plan.local.path);
        }
        this.source = fileSource(this.file, plan.local.path);
      } else if (plan.local.kind === 'stream-in') {
        this.source = streamSource(plan.local.body, plan.name);
      }
    }
    // The first time, a fresh part file (or the one to resume); after a reconnect, the same one.
    const fresh = this.view.done === 0 && this.view.resumes === 0 && plan.startAt === 0;
    const handle = await sftp.openFile(part, fresh ? 'w' : 'r+', { mode: 0o600 } as Attributes).catch((err: unknown) => {
      // Cut off before the part file was made: it is made now.
      if (!fresh && err instanceof HitchError && err.code === 'not-found') return sftp.openFile(part, 'w', { mode: 0o600 } as Attributes);
      throw err;
    });
    let closed = false;
    try {
      await pushRange({ ...this.copyOptions(sftp, sftp.limits.maxWriteLength), handle, path: part, read: (offset, length) => this.source!.read(offset, length) });
      // A longer part file (a resumed one that had more) is cut to the source's size.
      await sftp.fsetstat(handle, { size: plan.size, mode: plan.mode & 0o777 } as Attributes, part);
      await sftp.closeHandle(handle, part);
      closed = true;
    } finally {
      if (!closed) void sftp.closeHandle(handle, part).catch(() => undefined);
    }
    if (plan.inPlace) return;
    if (plan.ifExists === 'fail') {
      if (await sftp.statOrNull(plan.remotePath)) {
        throw new HitchError('exists', `${plan.remotePath} appeared on ${plan.hostId} while it was being uploaded: kept, and the upload left in ${part}.`);
      }
      await sftp.renameNoReplace(part, plan.remotePath);
    } else {
      await sftp.renameReplacing(part, plan.remotePath);
    }
  }

  /**
   * After a failure the part file stays, to resume (a download's is cut back to the bytes done:
   * chunks written ahead of them are dropped); after a cancel it goes. A destination resumed in
   * place is the person's file and always stays, never shorter than it was.
   */
  private async cleanUp(cancelled: boolean): Promise<void> {
    const keep = !cancelled || this.plan.inPlace;
    const size = Math.max(this.view.done, this.plan.keptSize);
    if (keep && this.plan.direction === 'download' && this.file) await this.file.truncate(size).catch(() => undefined);
    await this.file?.close().catch(() => undefined);
    this.file = null;
    if (!cancelled || this.plan.inPlace) return; // a file resumed in place is the person's: it stays
    const part = this.partPath;
    if (!part) return;
    if (this.plan.direction === 'download') {
      await unlink(part).catch(() => undefined);
      return;
    }
    if (this.plan.master.state !== 'ready') return;
    try {
      const sftp = await this.deps.sftp.of(this.plan.master, this.plan.hostId);
      await sftp.unlink(part);
    } catch {
      // gone already, or the host is: a part file left behind is harmless
    }
  }
}

export class TransferQueue {
  private readonly transfers = new Map<string, Transfer>();
  private readonly queue: Transfer[] = [];
  /** Transfers running, per master id. */
  private readonly running = new Map<string, number>();
  private nextNumber = 1;

  constructor(private readonly deps: TransferQueueDeps) {}

  list(): TransferView[] {
    return [...this.transfers.values()].map((t) => ({ ...t.view }));
  }

  cancel(transferId: string): void {
    const transfer = this.transfers.get(transferId);
    if (!transfer) throw new HitchError('bad-request', `No transfer ${transferId}.`);
    if (transfer.ended) return;
    transfer.abort.abort();
    const queued = this.queue.indexOf(transfer);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      transfer.view.state = 'cancelled';
      transfer.view.endedAt = Date.now();
      transfer.changed(true);
      if (transfer.plan.local.kind === 'stream-out') transfer.plan.local.body.destroy(cancelledError());
      this.retire(transfer);
    }
  }

  /** Cancels every transfer (the engine shuts down). */
  cancelAll(): void {
    for (const t of this.transfers.values()) if (!t.ended) this.cancel(t.view.id);
  }

  /**
   * Copies a file between this computer and the host. The checks a person must hear about at
   * once (no such file, the destination exists) happen before it is queued.
   */
  async start(
    master: HostMaster,
    sftp: SftpSession,
    request: { hostId: string; direction: 'upload' | 'download'; localPath: string; remotePath: string; ifExists: IfExists; exact?: boolean },
  ): Promise<TransferView> {
    const plan = request.direction === 'download' ? await this.planDownload(master, sftp, request) : await this.planUpload(master, sftp, request);
    return this.enqueue(plan).view;
  }

  /** The web host's upload: `body` gives `size` bytes, read with backpressure. */
  async startUploadStream(
    master: HostMaster,
    sftp: SftpSession,
    request: { hostId: string; remotePath: string; name: string; size: number; body: Readable; ifExists: IfExists },
  ): Promise<TransferView> {
    if (!isPlainName(request.name)) throw new HitchError('bad-request', `"${request.name}" is not a file name.`);
    const dir = await sftp.realpath(request.remotePath);
    if (!(await sftp.stat(dir)).isDirectory()) throw new HitchError('bad-request', `${dir} on ${request.hostId} is not a directory: an upload goes into one.`);
    const target = joinRemote(dir, request.name);
    const plan = await this.remoteDestination(master, sftp, request.hostId, target, request.size, 0o644, request.ifExists);
    return this.enqueue({ ...plan, direction: 'upload', local: { kind: 'stream-in', body: request.body }, name: request.name }).view;
  }

  /** The web host's download: the file's bytes as a stream (paused by a reconnect, ended with an error by a cancel). */
  async startDownloadStream(master: HostMaster, sftp: SftpSession, hostId: string, remotePath: string): Promise<{ transfer: TransferView; size: number; name: string; body: Readable }> {
    const source = await this.remoteSource(sftp, hostId, remotePath);
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    const transfer = this.enqueue({
      hostId,
      master,
      direction: 'download',
      local: { kind: 'stream-out', body },
      remotePath: source.path,
      name: baseName(source.path),
      size: source.size,
      mode: source.mode,
      ifExists: 'replace',
      startAt: 0,
      replaces: false,
      inPlace: false,
      keptSize: 0,
    });
    // The reader went away (a closed browser tab): the transfer ends with it.
    body.once('close', () => {
      if (!transfer.ended) this.cancel(transfer.view.id);
    });
    return { transfer: transfer.view, size: source.size, name: baseName(source.path), body };
  }

  private enqueue(plan: Plan): Transfer {
    const transfer = new Transfer(`t${this.nextNumber++}`, plan, this.deps);
    const busy = [...this.transfers.values()].find((t) => !t.ended && t.destination === transfer.destination);
    if (busy) throw new HitchError('exists', `${busy.view.id} is writing ${plan.direction === 'upload' ? plan.remotePath : busy.view.localPath} already.`);
    this.transfers.set(transfer.view.id, transfer);
    this.queue.push(transfer);
    transfer.changed(true);
    this.deps.log.info('transfer queued', { transfer: transfer.view.id, host: plan.hostId, direction: plan.direction, remote: plan.remotePath, bytes: plan.size, from: plan.startAt });
    this.next();
    return transfer;
  }

  /** Starts the queued transfers whose master has room, oldest first. */
  private next(): void {
    for (const transfer of [...this.queue]) {
      const masterId = transfer.plan.master.id;
      const running = this.running.get(masterId) ?? 0;
      if (running >= MAX_RUNNING) continue;
      this.queue.splice(this.queue.indexOf(transfer), 1);
      this.running.set(masterId, running + 1);
      void transfer.run().finally(() => {
        const left = (this.running.get(masterId) ?? 1) - 1;
        if (left > 0) this.running.set(masterId, left);
        else this.running.delete(masterId);
        this.retire(transfer);
        this.next();
      });
    }
  }

  /** Ended transfers stay listed, the oldest let go past MAX_ENDED. */
  private retire(_transfer: Transfer): void {
    const ended = [...this.transfers.values()].filter((t) => t.ended);
    for (const old of ended.slice(0, Math.max(0, ended.length - MAX_ENDED))) this.transfers.delete(old.view.id);
  }

  /** A regular file on the host to copy from. */
  private async remoteSource(sftp: SftpSession, hostId: string, remotePath: string): Promise<{ path: string; size: number; mode: number }> {
    const path = await sftp.realpath(remotePath);
    const stats = await sftp.stat(path);
    if (stats.isDirectory()) throw new HitchError('bad-request', `${path} on ${hostId} is a directory: Hitch copies files.`);
    if (!stats.isFile()) throw new HitchError('bad-request', `${path} on ${hostId} is not a regular file.`);
    if (!Number.isSafeInteger(stats.size) || stats.size < 0) throw new HitchError('sftp', `The SFTP server on ${hostId} did not say how large ${path} is.`);
    return { path, size: stats.size, mode: stats.mode };
  }

  private async planDownload(master: HostMaster, sftp: SftpSession, r: { hostId: string; localPath: string; remotePath: string; ifExists: IfExists; exact?: boolean }): Promise<Plan> {
    const source = await this.remoteSource(sftp, r.hostId, r.remotePath);
    let path = r.localPath;
    if (r.exact) {
      const there = await lstat(path).catch(() => null);
      if (there?.isDirectory()) throw new HitchError('bad-request', `${path} is a directory on this computer: not replaced by a file.`);
      if (there?.isSymbolicLink()) throw new HitchError('bad-request', `${path} is a symlink on this computer: not followed, and not replaced.`);
    }
    let existing = await localStatOrNull(path);
    if (existing?.isDirectory() && !r.exact) {
      const name = baseName(source.path);
      if (!isPlainName(name)) throw new HitchError('sftp', `The SFTP server on ${r.hostId} named ${r.remotePath} "${name}": not a file name to save under.`);
      path = join(path, name);
      existing = await localStatOrNull(path);
    }
    if (existing?.isDirectory()) throw new HitchError('exists', `${path} is a directory on this computer.`);
    const part = path + PART_SUFFIX;
    let startAt = 0;
    let inPlace = false;
    if (existing && r.ifExists === 'fail') {
      throw new HitchError('exists', `${path} already exists on this computer; it is not replaced unless you ask.`);
    }
    if (r.ifExists === 'resume') {
      const partStats = await localStatOrNull(part);
      if (partStats?.isFile()) startAt = Math.max(0, partStats.size - RESUME_OVERLAP);
      else if (existing?.isFile()) {
        if (existing.size > source.size) throw new HitchError('exists', `${path} is larger than ${source.path} on ${r.hostId}: it is not the start of it, so there is nothing to resume; it is not replaced unless you ask.`);
        // The destination itself is the start: it goes on in place, less its tail as for a part file.
        startAt = Math.max(0, existing.size - RESUME_OVERLAP);
        inPlace = true;
      }
      if (startAt > source.size) startAt = 0; // not a start of this file: copied afresh
    }
    if ((await lstat(part).catch(() => null))?.isSymbolicLink()) throw new HitchError('bad-request', `${part} is a symlink: remove it first.`);
    return {
      hostId: r.hostId,
      master,
      direction: 'download',
      local: { kind: 'file', path },
      remotePath: source.path,
      name: basename(path),
      size: source.size,
      mode: source.mode,
      ifExists: r.ifExists,
      startAt,
      replaces: existing !== null,
      inPlace,
      keptSize: inPlace ? existing!.size : 0,
    };
  }

  private async planUpload(master: HostMaster, sftp: SftpSession, r: { hostId: string; localPath: string; remotePath: string; ifExists: IfExists; exact?: boolean }): Promise<Plan> {
    let local: Stats;
    try {
      local = await stat(r.localPath);
    } catch (err) {
      throw localError(err, r.localPath);
    }
    if (local.isDirectory()) throw new HitchError('bad-request', `${r.localPath} is a directory: Hitch copies files.`);
    if (!local.isFile()) throw new HitchError('bad-request', `${r.localPath} is not a regular file.`);
    let target: string;
    if (r.exact) {
      const there = await sftp.lstat(r.remotePath).catch(() => null);
      if (there?.isDirectory()) throw new HitchError('bad-request', `${r.remotePath} is a directory on ${r.hostId}: not replaced by a file.`);
      if (there?.isSymbolicLink()) throw new HitchError('bad-request', `${r.remotePath} is a symlink on ${r.hostId}: not followed, and not replaced.`);
    }
    const asked = r.exact ? null : await sftp.statOrNull(r.remotePath);
    if (asked?.isDirectory()) target = joinRemote(await sftp.realpath(r.remotePath), baseName(r.localPath));
    else target = await this.absoluteRemote(sftp, r.remotePath);
    const plan = await this.remoteDestination(master, sftp, r.hostId, target, local.size, local.mode, r.ifExists);
    return { ...plan, local: { kind: 'file', path: r.localPath }, name: baseName(target) };
  }

  /** An absolute path for one that may not exist yet: its directory resolved, its name kept. */
  private async absoluteRemote(sftp: SftpSession, path: string): Promise<string> {
    const cut = path.replace(/\/+$/, '').lastIndexOf('/');
    const dir = cut < 0 ? '.' : cut === 0 ? '/' : path.slice(0, cut);
    return joinRemote(await sftp.realpath(dir), baseName(path));
  }

  /** Where an upload goes, what to do with what is there, and where it goes on from. */
  private async remoteDestination(
    master: HostMaster,
    sftp: SftpSession,
    hostId: string,
    target: string,
    size: number,
    mode: number,
    ifExists: IfExists,
  ): Promise<Omit<Plan, 'local' | 'name'>> {
    const existing = await sftp.statOrNull(target);
    if (existing?.isDirectory()) throw new HitchError('exists', `${target} is a directory on ${hostId}.`);
    if (existing && ifExists === 'fail') throw new HitchError('exists', `${target} already exists on ${hostId}; it is not replaced unless you ask.`);
    const part = target + PART_SUFFIX;
    let startAt = 0;
    let inPlace = false;
    if (ifExists === 'resume') {
      const partStats = await sftp.statOrNull(part);
      if (partStats?.isFile()) startAt = Math.max(0, partStats.size - RESUME_OVERLAP);
      else if (existing?.isFile()) {
        if (existing.size > size) throw new HitchError('exists', `${target} on ${hostId} is larger than the file sent: it is not the start of it, so there is nothing to resume; it is not replaced unless you ask.`);
        // The destination itself is the start: it goes on in place, less its tail as for a part file.
        startAt = Math.max(0, existing.size - RESUME_OVERLAP);
        inPlace = true;
      }
      if (startAt > size) startAt = 0;
    }
    return { hostId, master, direction: 'upload', remotePath: target, size, mode, ifExists, startAt, replaces: existing !== null, inPlace, keptSize: inPlace ? existing!.size : 0 };
  }
}

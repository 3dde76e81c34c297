// One SFTP session on a master's connection, as promises, with the server's answers turned
// into HitchErrors a person can act on. ssh2's SFTP client silently drops a request made once
// its channel is closing (its callback never comes), so every request here first checks the
// channel, and every request still waiting when the channel closes fails with SftpGone: the
// caller (a transfer) tells "the connection went" apart from "the server said no".
import type { Attributes, FileEntry as Ssh2FileEntry, SFTPWrapper, Stats } from 'ssh2';
import { HitchError } from '../errors';

/** SSH_FX_* status codes (draft-ietf-secsh-filexfer-02), as ssh2 puts them on `err.code`. */
const FX = { EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, OP_UNSUPPORTED: 8 } as const;

/** The session's channel closed (the connection dropped, or the server ended SFTP): nothing was answered. */
export class SftpGone extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'SftpGone';
  }
}

/** What the server's limits@openssh.com (read by ssh2 at start) allow per request. */
export interface SftpLimits {
  maxReadLength: number;
  maxWriteLength: number;
}

interface Ssh2SftpInternals {
  outgoing: { state: string };
  _extensions: Record<string, string>;
  _maxReadLen: number;
  _maxWriteLen: number;
}

/** A server's refusal as a HitchError naming the path; anything else is left as it is. */
export function sftpError(err: unknown, what: string): Error {
  if (err instanceof HitchError || err instanceof SftpGone) return err;
  const e = err as Error & { code?: unknown };
  switch (e.code) {
    case FX.NO_SUCH_FILE:
      return new HitchError('not-found', `${what}: no such file or directory.`, { cause: err });
    case FX.PERMISSION_DENIED:
      return new HitchError('permission-denied', `${what}: permission denied.`, { cause: err });
    case FX.OP_UNSUPPORTED:
      return new HitchError('sftp', `${what}: the host's SFTP server does not support this.`, { cause: err });
    default:
      return new HitchError('sftp', `${what}: the host's SFTP server failed (${e.message}).`, { cause: err });
  }
}

export class SftpSession {
  private gone: SftpGone | null = null;
  /** Requests waiting for an answer: failed at once if the channel closes first. */
  private readonly waiting = new Set<(err: Error) => void>();

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly hostId: string,
  ) {
    sftp.once('close', () => this.lose(new SftpGone(`the SFTP session on ${hostId} ended`)));
    sftp.on('error', (err: Error) => this.lose(new SftpGone(`the SFTP session on ${hostId} failed: ${err.message}`)));
  }

  get isOpen(): boolean {
    return this.gone === null && (this.sftp as unknown as Ssh2SftpInternals).outgoing.state === 'open';
  }

  get limits(): SftpLimits {
    const s = this.sftp as unknown as Ssh2SftpInternals;
    return { maxReadLength: s._maxReadLen, maxWriteLength: s._maxWriteLen };
  }

  private lose(gone: SftpGone): void {
    this.gone ??= gone;
    for (const fail of [...this.waiting]) fail(this.gone);
    this.waiting.clear();
  }

  /** Ends the session (its channel); requests still waiting fail with SftpGone. */
  close(): void {
    this.lose(new SftpGone(`the SFTP session on ${this.hostId} was closed`));
    this.sftp.end();
  }

  /** Sends one request through `send`; its answer, a refusal mapped for `what`, or SftpGone. */
  private call<T>(what: string, send: (done: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.isOpen) {
        reject(this.gone ?? new SftpGone(`the SFTP session on ${this.hostId} is closing`));
        return;
      }
      const fail = (err: Error): void => {
        this.waiting.delete(fail);
        reject(err);
      };
      this.waiting.add(fail);
      send((err, value) => {
        if (!this.waiting.delete(fail)) return; // already failed with the session
        // ssh2 answers requests cut off by a closing channel with a plain error, no status code.
        if (err && typeof (err as { code?: unknown }).code !== 'number') reject(this.gone ?? new SftpGone(`the SFTP session on ${this.hostId} ended: ${err.message}`));
        else if (err) reject(sftpError(err, what));
        else resolve(value as T);
      });
    });
  }

  realpath(path: string): Promise<string> {
    return this.call(path, (done) => this.sftp.realpath(path, done));
  }

  readlink(path: string): Promise<string> {
    return this.call(path, (done) => this.sftp.readlink(path, done));
  }

  lstat(path: string): Promise<Stats> {
    return this.call(path, (done) => this.sftp.lstat(path, done));
  }

  stat(path: string): Promise<Stats> {
    return this.call(path, (done) => this.sftp.stat(path, done));
  }

  /** Null when nothing is there (or it cannot be seen): for "does the destination exist?". */
  async statOrNull(path: string): Promise<Stats | null> {
    try {
      return await this.stat(path);
    } catch (err) {
      if (err instanceof HitchError && err.code === 'not-found') return null;
      throw err;
    }
  }

  readdir(path: string): Promise<Ssh2FileEntry[]> {
    return this.call(path, (done) => this.sftp.readdir(path, done));
  }

  mkdir(path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.mkdir(path, (err) => done(err)));
  }

  rmdir(path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.rmdir(path, (err) => done(err)));
  }

  unlink(path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.unlink(path, (err) => done(err)));
  }

  /** Plain SFTP rename: the server refuses it when `to` exists (OpenSSH links, then unlinks). */
  renameNoReplace(from: string, to: string): Promise<void> {
    return this.call(`${from} → ${to}`, (done) => this.sftp.rename(from, to, (err) => done(err)));
  }

  /**
   * Renames over `to` (the caller has decided replacing it is wanted): atomically with
   * posix-rename@openssh.com where the server has it, else by removing `to` first.
   */
  async renameReplacing(from: string, to: string): Promise<void> {
    if ((this.sftp as unknown as Ssh2SftpInternals)._extensions['posix-rename@openssh.com'] === '1') {
      return this.call(`${from} → ${to}`, (done) => this.sftp.ext_openssh_rename(from, to, (err) => done(err)));
    }
    await this.unlink(to).catch((err: unknown) => {
      if (!(err instanceof HitchError && err.code === 'not-found')) throw err;
    });
    return this.renameNoReplace(from, to);
  }

  openFile(path: string, flags: 'r' | 'r+' | 'w' | 'wx', attrs?: Attributes): Promise<Buffer> {
    return this.call(path, (done) => (attrs ? this.sftp.open(path, flags, attrs, done) : this.sftp.open(path, flags, done)));
  }

  closeHandle(handle: Buffer, path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.close(handle, (err) => done(err)));
  }

  fstat(handle: Buffer, path: string): Promise<Stats> {
    return this.call(path, (done) => this.sftp.fstat(handle, done));
  }

  fsetstat(handle: Buffer, attrs: Attributes, path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.fsetstat(handle, attrs, (err) => done(err)));
  }

  /** Reads up to `length` bytes at `position`; fewer near the end of the file, 0 at its end. */
  read(handle: Buffer, buffer: Buffer, length: number, position: number, path: string): Promise<number> {
    return this.call(path, (done) =>
      this.sftp.read(handle, buffer, 0, length, position, (err, bytesRead) => {
        if (err && (err as { code?: unknown }).code === FX.EOF) done(undefined, 0);
        else done(err, bytesRead);
      }),
    );
  }

  write(handle: Buffer, buffer: Buffer, position: number, path: string): Promise<void> {
    return this.call(path, (done) => this.sftp.write(handle, buffer, 0, buffer.length, position, (err) => done(err)));
  }
}

// Read replies copied straight into the reader's buffer (main/engine/files/sftp-data-replies.ts)
// against a real OpenSSH sftp-server: every byte lands where ssh2's own path puts it, whatever
// the request's size, wherever the SSH packets split a reply, and with other requests' answers
// (stat, readdir, a refusal) arriving between the replies.
import { createHash, randomBytes } from 'node:crypto';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyDataRepliesDirectly } from '../../main/engine/files/sftp-data-replies';
import { widenWindow } from '../../main/engine/masters/ssh2-channels';
import { ssh2Client, startSshd, type Sshd } from '../fixtures/sshd';

/** Opens an SFTP session on sshd as its test user, the direct path in front when `direct`. */
async function openSftp(sshd: Sshd, direct: boolean, window?: number): Promise<{ client: Client; sftp: SFTPWrapper }> {
  const client = await ssh2Client(sshd);
  const sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
  if (direct) expect(copyDataRepliesDirectly(sftp)).toBe(true);
  if (window) widenWindow(sftp as unknown as ClientChannel, window); // after, as the engine does
  return { client, sftp };
}
const call = <T>(send: (done: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => send((err, value) => (err ? reject(err) : resolve(value as T))));

/** Reads `length` bytes at `position` the way a download does: into a buffer of its own. */
function read(sftp: SFTPWrapper, handle: Buffer, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length, 0xee);
  return new Promise((resolve, reject) =>
    sftp.read(handle, buffer, 0, length, position, (err, n) => {
      if (err && (err as { code?: number }).code === 1) resolve(Buffer.alloc(0)); // EOF
      else if (err) reject(err);
      else resolve(buffer.subarray(0, n));
    }),
  );
}

describe('SFTP read replies copied directly', () => {
  let sshd: Sshd;
  /** A file on the host: random bytes, an odd size, so the last read is short. */
  let remotePath: string;
  let content: Buffer;

  beforeAll(async () => {
    sshd = await startSshd();
    content = randomBytes(3 * 1048576 + 12_345);
    remotePath = `/tmp/hitch-direct-${randomBytes(6).toString('hex')}.bin`;
    const { client, sftp } = await openSftp(sshd, false);
    await call<void>((done) => sftp.writeFile(remotePath, content, (err) => done(err)));
    client.end();
  });
  afterAll(async () => {
    if (remotePath && sshd) {
      const { client, sftp } = await openSftp(sshd, false);
      await call<void>((done) => sftp.unlink(remotePath, (err) => done(err))).catch(() => undefined);
      client.end();
    }
    await sshd?.stop();
  });

  it('fills each read with the bytes at its offset, for every request size, many in flight', async () => {
    const { client, sftp } = await openSftp(sshd, true);
    try {
      const handle = await call<Buffer>((done) => sftp.open(remotePath, 'r', done));
      // Sizes from one byte to the server's largest reply; offsets that cross the file's end.
      const asks: [number, number][] = [
        [1, 0],
        [7, 1],
        [32 * 1024, 5],
        [128 * 1024, 100_000],
        [255 * 1024, 1048576],
        [128 * 1024, content.length - 1000], // short: only 1000 bytes are left
        [4096, content.length], // at the end: EOF
      ];
      for (let at = 0; at < content.length; at += 128 * 1024) asks.push([128 * 1024, at]); // a whole download's worth at once
      const got = await Promise.all(asks.map(([length, position]) => read(sftp, handle, length, position)));
      asks.forEach(([length, position], i) => {
        expect(got[i]!.equals(content.subarray(position, position + length)), `read of ${length} at ${position}`).toBe(true);
      });
      await call<void>((done) => sftp.close(handle, (err) => done(err)));
    } finally {
      client.end();
    }
  });

  it("keeps a whole file's reads in flight through a window wider than ssh2's, as the engine does", async () => {
    const { client, sftp } = await openSftp(sshd, true, 8 * 1048576);
    try {
      const handle = await call<Buffer>((done) => sftp.open(remotePath, 'r', done));
      const positions = Array.from({ length: Math.ceil(content.length / (128 * 1024)) }, (_, i) => i * 128 * 1024);
      // Three times the file: more than the window, so it must have been topped up on the way.
      for (let round = 0; round < 3; round++) {
        const whole = Buffer.concat(await Promise.all(positions.map((at) => read(sftp, handle, 128 * 1024, at))));
        expect(whole.equals(content)).toBe(true);
      }
      // Still wide: ssh2's own adjustment (back to 2 MiB) never took over.
      expect((sftp as unknown as { incoming: { window: number } }).incoming.window).toBeGreaterThan(4 * 1048576);
      await call<void>((done) => sftp.close(handle, (err) => done(err)));
    } finally {
      client.end();
    }
  });

  it('passes every other answer to ssh2 unchanged, between replies in flight', async () => {
    const { client, sftp } = await openSftp(sshd, true);
    try {
      const handle = await call<Buffer>((done) => sftp.open(remotePath, 'r', done));
      const reads = Array.from({ length: 16 }, (_, i) => read(sftp, handle, 128 * 1024, i * 128 * 1024));
      const [stats, listing, missing] = await Promise.all([
        call<{ size: number }>((done) => sftp.stat(remotePath, done)),
        call<{ filename: string }[]>((done) => sftp.readdir('/tmp', done)),
        call<unknown>((done) => sftp.stat(`${remotePath}.missing`, done)).then(
          () => 'found',
          (err: { code?: number }) => err.code,
        ),
      ]);
      expect(stats.size).toBe(content.length);
      expect(listing.map((e) => e.filename)).toContain(remotePath.slice('/tmp/'.length));
      expect(missing).toBe(2); // SSH_FX_NO_SUCH_FILE, as ssh2 reports it
      const whole = Buffer.concat(await Promise.all(reads));
      expect(createHash('sha256').update(whole).digest('hex')).toBe(createHash('sha256').update(content.subarray(0, 16 * 128 * 1024)).digest('hex'));
      await call<void>((done) => sftp.close(handle, (err) => done(err)));
    } finally {
      client.end();
    }
  });
});

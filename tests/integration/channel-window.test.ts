// A channel's receive window widened beyond ssh2's 2 MiB (widenWindow, used for SFTP
// sessions), against a real sshd: the server may then send that much before Hitch reads any
// of it, and every byte still arrives once reading resumes.
import type { ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { widenWindow } from '../../main/engine/masters/ssh2-channels';
import { ssh2Client, startSshd, type Sshd } from '../fixtures/sshd';

const MiB = 1048576;
const TOTAL = 16 * MiB;

/** Runs `head -c TOTAL` with reading paused; resolves with what arrived unread, then all of it. */
async function sentWhilePaused(sshd: Sshd, window: number | null): Promise<{ unread: number; total: number }> {
  const client = await ssh2Client(sshd);
  try {
    const channel = await new Promise<ClientChannel>((resolve, reject) => client.exec(`head -c ${TOTAL} /dev/zero`, (err, c) => (err ? reject(err) : resolve(c))));
    if (window) widenWindow(channel, window);
    channel.pause();
    // What the server sends before it waits for the window: until nothing more comes.
    let unread = -1;
    while (channel.readableLength !== unread) {
      unread = channel.readableLength;
      await new Promise((r) => setTimeout(r, 200));
    }
    let total = 0;
    channel.on('data', (d: Buffer) => (total += d.length));
    channel.stderr.resume();
    channel.resume();
    await new Promise((r) => channel.once('close', r));
    return { unread, total };
  } finally {
    client.end();
  }
}

describe('a widened channel window', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it('lets the server send that much ahead, and loses nothing', async () => {
    const ssh2s = await sentWhilePaused(sshd, null);
    const widened = await sentWhilePaused(sshd, 8 * MiB);
    // ssh2's own window: 2 MiB, topped up once by 1 MiB before its buffer is full.
    expect(ssh2s.unread).toBeLessThanOrEqual(4 * MiB);
    expect(widened.unread).toBeGreaterThanOrEqual(7 * MiB);
    expect(widened.unread).toBeLessThanOrEqual(10 * MiB); // no more than asked
    expect(ssh2s.total).toBe(TOTAL);
    expect(widened.total).toBe(TOTAL);
  });
});

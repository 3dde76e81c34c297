// A person browses a host's files and copies files to and from it, over the master's SFTP
// session: no second login, and a copy cut off by the network goes on where it stopped once
// the master is back, ending with the same bytes.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransferView } from '../../preload/api';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { behindProxy, startProxy, type TcpProxy } from '../fixtures/tcp-proxy';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { HitchError } from '../../main/engine/errors';
import { RESUME_OVERLAP } from '../../main/engine/files/transfers';
import { sha256File } from '../fixtures/local-files';

/** Resolves with the transfer's view once it has ended (done, failed or cancelled). */
function ended(t: TestEngine, id: string, timeoutMs = 120_000): Promise<TransferView> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      const last = t.engine.listTransfers().find((x) => x.id === id);
      if (last && (last.state === 'done' || last.state === 'failed' || last.state === 'cancelled')) return resolve(last);
      if (Date.now() > deadline) return reject(new Error(`transfer ${id} still ${last?.state} at ${last?.done} bytes`));
      setTimeout(check, 50);
    };
    check();
  });
}

async function codeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (err) {
    if (err instanceof HitchError) return err.code;
    throw err;
  }
  throw new Error('it succeeded');
}

describe('files over the master', () => {
  let sshd: Sshd;
  let t: TestEngine;
  let local: string;
  /** A directory of this test run on the host, under the login directory. */
  let remote: string;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await testEngine(sshd.clientConfig('filehost'));
    local = await mkdtemp(join(tmpdir(), 'hitch-files-'));
    remote = (await t.engine.makeDirectory('filehost', `hitch-files-${randomBytes(6).toString('hex')}`)).path;
  });
  afterAll(async () => {
    if (remote) await t?.engine.deleteFile('filehost', remote).catch(() => undefined);
    await t?.close();
    await sshd?.stop();
    if (local) await rm(local, { recursive: true, force: true });
  });

  it('lists, makes, renames (never over an existing name) and deletes recursively', async () => {
    const home = await t.engine.listFiles('filehost', '.');
    expect(home.path).toBe(`/home/${sshd.user}`);
    expect(home.entries.find((e) => e.name === remote.split('/').pop())).toMatchObject({ type: 'directory', permissions: expect.stringMatching(/^drwx/) });

    const made = await t.engine.makeDirectory('filehost', `${remote}/a`);
    expect(made.path).toBe(`${remote}/a`);
    expect(await codeOf(t.engine.makeDirectory('filehost', `${remote}/a`))).toBe('exists');
    await t.engine.makeDirectory('filehost', `${remote}/a/deeper`);
    await t.engine.makeDirectory('filehost', `${remote}/b`);
    // A file inside, and a symlink pointing out of the tree that delete must not follow.
    await writeFile(join(local, 'small.txt'), 'hello\n');
    const up = await t.engine.startTransfer({ hostId: 'filehost', direction: 'upload', localPath: join(local, 'small.txt'), remotePath: `${remote}/a/deeper` });
    expect(await ended(t, up.id)).toMatchObject({ state: 'done', done: 6, remotePath: `${remote}/a/deeper/small.txt` });
    await t.engine.makeDirectory('filehost', `${remote}/keep`);
    const upKeep = await t.engine.startTransfer({ hostId: 'filehost', direction: 'upload', localPath: join(local, 'small.txt'), remotePath: `${remote}/keep/kept.txt` });
    expect((await ended(t, upKeep.id)).state).toBe('done');

    const listed = await t.engine.listFiles('filehost', `${remote}/a/deeper`);
    expect(listed.entries).toEqual([
      expect.objectContaining({ name: 'small.txt', type: 'file', size: 6, permissions: expect.stringMatching(/^-rw/) }),
    ]);

    expect(await codeOf(t.engine.renameFile('filehost', `${remote}/a`, `${remote}/b`))).toBe('exists');
    await t.engine.renameFile('filehost', `${remote}/a`, `${remote}/c`);
    expect((await t.engine.listFiles('filehost', remote)).entries.map((e) => e.name).filter((n) => n.length === 1 || n === 'keep').sort()).toEqual(['b', 'c', 'keep']);
    expect(await codeOf(t.engine.listFiles('filehost', `${remote}/a`))).toBe('not-found');

    expect(await codeOf(t.engine.deleteFile('filehost', '.'))).toBe('bad-request');
    expect(await codeOf(t.engine.deleteFile('filehost', '/'))).toBe('bad-request');
    await t.engine.deleteFile('filehost', `${remote}/c`);
    expect((await t.engine.listFiles('filehost', remote)).entries.map((e) => e.name).filter((n) => n.length === 1 || n === 'keep').sort()).toEqual(['b', 'keep']);
    expect(await sshd.acceptedLogins()).toBe(1);
  });

  it("follows a shell's working directory without typing into it", async () => {
    const dir = (await t.engine.makeDirectory('filehost', `${remote}/cwd here`)).path;
    const s = await t.engine.openSession('filehost', { kind: 'shell', cols: 80, rows: 24 });
    t.engine.writeSession(s.id, `cd '${dir}' && echo moved-$((40+2))\n`);
    await t.waitForOutput(s.id, /moved-42/);
    const outputs = (): number => t.events.filter((e) => e.event === 'session.data' && e.payload.sessionId === s.id).length;
    // The prompt after the echo may come in a message of its own, later on a busy machine: once all is quiet.
    for (let last = -1; outputs() !== last; await new Promise((r) => setTimeout(r, 300))) last = outputs();
    const before = outputs();
    expect((await t.engine.sessionCwd(s.id)).path).toBe(dir);
    // Nothing was written to the shell to learn it: no output came of it.
    await new Promise((r) => setTimeout(r, 200));
    expect(outputs()).toBe(before);
    t.engine.closeSession(s.id);
  });

  it('never replaces an existing destination unless asked, and resumes a part file', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    await writeFile(join(local, 'three.bin'), data);
    const first = await t.engine.startTransfer({ hostId: 'filehost', direction: 'upload', localPath: join(local, 'three.bin'), remotePath: `${remote}/three.bin` });
    expect((await ended(t, first.id)).state).toBe('done');
    expect(await codeOf(t.engine.startTransfer({ hostId: 'filehost', direction: 'upload', localPath: join(local, 'three.bin'), remotePath: `${remote}/three.bin` }))).toBe('exists');

    // Downloads: a part file is gone on from, less its tail (which may have had a gap).
    const big = randomBytes(12 * 1024 * 1024);
    await writeFile(join(local, 'big.bin'), big);
    const upBig = await t.engine.startTransfer({ hostId: 'filehost', direction: 'upload', localPath: join(local, 'big.bin'), remotePath: `${remote}/big.bin` });
    expect((await ended(t, upBig.id)).state).toBe('done');
    await writeFile(join(local, 'big-back.bin.hitch-part'), big.subarray(0, 10 * 1024 * 1024));
    const resumed = await t.engine.startTransfer({ hostId: 'filehost', direction: 'download', localPath: join(local, 'big-back.bin'), remotePath: `${remote}/big.bin`, ifExists: 'resume' });
    expect(resumed.done).toBe(10 * 1024 * 1024 - RESUME_OVERLAP);
    expect((await ended(t, resumed.id)).state).toBe('done');
    expect((await readFile(join(local, 'big-back.bin'))).equals(big)).toBe(true);

    await writeFile(join(local, 'back.bin.hitch-part'), data.subarray(0, 1024 * 1024));
    const down = await t.engine.startTransfer({ hostId: 'filehost', direction: 'download', localPath: join(local, 'back.bin'), remotePath: `${remote}/three.bin`, ifExists: 'resume' });
    expect((await ended(t, down.id)).state).toBe('done');
    expect((await readFile(join(local, 'back.bin'))).equals(data)).toBe(true);
    await expect(stat(join(local, 'back.bin.hitch-part'))).rejects.toThrow();
    expect(await codeOf(t.engine.startTransfer({ hostId: 'filehost', direction: 'download', localPath: join(local, 'back.bin'), remotePath: `${remote}/three.bin` }))).toBe('exists');
    const again = await t.engine.startTransfer({ hostId: 'filehost', direction: 'download', localPath: local, remotePath: `${remote}/three.bin`, ifExists: 'replace' });
    expect(await ended(t, again.id)).toMatchObject({ state: 'done', localPath: join(local, 'three.bin') });
    expect((await readFile(join(local, 'three.bin'))).equals(data)).toBe(true);
  });

  it('streams an upload from and a download to the web host', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 7);
    const up = await t.engine.uploadFromStream({ hostId: 'filehost', remotePath: remote, name: 'streamed.bin', size: data.length, body: Readable.from([data.subarray(0, 1000), data.subarray(1000)]) });
    expect(up.localPath).toBeNull();
    expect(await ended(t, up.id)).toMatchObject({ state: 'done', remotePath: `${remote}/streamed.bin` });
    const down = await t.engine.downloadToStream({ hostId: 'filehost', remotePath: `${remote}/streamed.bin` });
    expect(down).toMatchObject({ size: data.length, name: 'streamed.bin' });
    const chunks: Buffer[] = [];
    for await (const chunk of down.body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect((await ended(t, down.transfer.id)).state).toBe('done');
  });
});

/** A real sshd behind a link the test can slow or cut (tcp-proxy), an engine, and a local folder. */
interface Rig {
  sshd: Sshd;
  proxy: TcpProxy;
  t: TestEngine;
  local: string;
}

async function startRig(opts: { sshd?: Parameters<typeof startSshd>[0]; config(sshd: Sshd, proxy: TcpProxy): Promise<string>; engine?: Parameters<typeof testEngine>[1] }): Promise<Rig> {
  const sshd = await startSshd(opts.sshd);
  const proxy = await startProxy({ targetPort: sshd.port });
  const t = await testEngine(await opts.config(sshd, proxy), opts.engine);
  return { sshd, proxy, t, local: await mkdtemp(join(tmpdir(), 'hitch-files-')) };
}

/** Takes a rig down, the link made whole first; `remote`, this run's folder on the host, is deleted through `hostId`. */
async function stopRig(rig: Rig | undefined, hostId: string, remote: string | undefined): Promise<void> {
  if (!rig) return;
  rig.proxy.blackhole(false);
  rig.proxy.setDelay(0);
  if (remote) await rig.t.engine.deleteFile(hostId, remote).catch(() => undefined);
  await rig.t.close();
  await rig.proxy.close();
  await rig.sshd.stop();
  await rm(rig.local, { recursive: true, force: true });
}

describe('a transfer cut off by the network', () => {
  let rig: Rig | undefined;
  let proxy: TcpProxy;
  let t: TestEngine;
  let local: string;
  let remote: string;

  beforeAll(async () => {
    rig = await startRig({ config: (sshd, link) => behindProxy(sshd, link, 'cuthost') });
    ({ proxy, t, local } = rig);
    remote = (await t.engine.makeDirectory('cuthost', `hitch-cut-${randomBytes(6).toString('hex')}`)).path;
  });
  afterAll(() => stopRig(rig, 'cuthost', remote));

  it("resumes from the destination itself in place: a cancel keeps the person's file, and a larger one is refused", async () => {
    const data = randomBytes(24 * 1024 * 1024);
    await writeFile(join(local, 'inplace-source.bin'), data);
    const up = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'upload', localPath: join(local, 'inplace-source.bin'), remotePath: `${remote}/inplace.bin` });
    expect((await ended(t, up.id)).state).toBe('done');
    const dest = join(local, 'inplace.bin');
    await writeFile(dest, data.subarray(0, 12 * 1024 * 1024)); // cut off by something else: no part file
    proxy.setDelay(20);
    try {
      const down = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'download', localPath: dest, remotePath: `${remote}/inplace.bin`, ifExists: 'resume' });
      expect(down.done).toBe(12 * 1024 * 1024 - RESUME_OVERLAP); // its tail is copied again, in case of a gap
      t.engine.cancelTransfer(down.id);
      expect((await ended(t, down.id)).state).toBe('cancelled');
    } finally {
      proxy.setDelay(0);
    }
    // Still there, under its name, at least as long as it was, and every byte of it right.
    const kept = await readFile(dest);
    expect(kept.length).toBeGreaterThanOrEqual(12 * 1024 * 1024);
    expect(kept.equals(data.subarray(0, kept.length))).toBe(true);
    await expect(stat(dest + '.hitch-part')).rejects.toThrow();

    const again = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'download', localPath: dest, remotePath: `${remote}/inplace.bin`, ifExists: 'resume' });
    expect((await ended(t, again.id)).state).toBe('done');
    expect((await readFile(dest)).equals(data)).toBe(true);

    // Longer than the source: not a start of it. Refused, and left as it is.
    await writeFile(dest, Buffer.concat([data, Buffer.from('more')]));
    expect(await codeOf(t.engine.startTransfer({ hostId: 'cuthost', direction: 'download', localPath: dest, remotePath: `${remote}/inplace.bin`, ifExists: 'resume' }))).toBe('exists');
    expect((await stat(dest)).size).toBe(data.length + 4);
  });

  it('cancels a running transfer: it ends cancelled and leaves no part file', async () => {
    const source = join(local, 'cancel-source.bin');
    await writeFile(source, randomBytes(16 * 1024 * 1024));
    const up = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'upload', localPath: source, remotePath: `${remote}/cancel.bin` });
    expect((await ended(t, up.id)).state).toBe('done');
    proxy.setDelay(20);
    try {
      const dest = join(local, 'cancelled.bin');
      const down = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'download', localPath: dest, remotePath: `${remote}/cancel.bin` });
      await expect.poll(() => t.engine.listTransfers().find((x) => x.id === down.id)!.done, { timeout: 60_000, interval: 20 }).toBeGreaterThan(1024 * 1024);
      t.engine.cancelTransfer(down.id);
      expect(await ended(t, down.id)).toMatchObject({ state: 'cancelled', error: null });
      await expect(stat(dest + '.hitch-part')).rejects.toThrow();
      await expect(stat(dest)).rejects.toThrow();
      expect(t.events.some((e) => e.event === 'transfer.changed' && e.payload.id === down.id && e.payload.state === 'cancelled')).toBe(true);
    } finally {
      proxy.setDelay(0);
    }
  });

  for (const direction of ['upload', 'download'] as const) {
    it(`resumes an ${direction} where it stopped and ends with the same checksum`, async () => {
      const size = 24 * 1024 * 1024;
      const source = join(local, `${direction}-source.bin`);
      await writeFile(source, randomBytes(size));
      if (direction === 'download') {
        const up = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'upload', localPath: source, remotePath: `${remote}/dl.bin` });
        expect((await ended(t, up.id)).state).toBe('done');
      }
      proxy.setDelay(20); // slow enough for the cut to land mid-way
      const transfer =
        direction === 'upload'
          ? await t.engine.startTransfer({ hostId: 'cuthost', direction, localPath: source, remotePath: `${remote}/up.bin` })
          : await t.engine.startTransfer({ hostId: 'cuthost', direction, localPath: join(local, 'dl.bin'), remotePath: `${remote}/dl.bin` });
      await expect.poll(() => t.engine.listTransfers().find((x) => x.id === transfer.id)!.done, { timeout: 60_000, interval: 20 }).toBeGreaterThan(2 * 1024 * 1024);
      proxy.resetAll();
      await expect.poll(() => t.engine.listTransfers().find((x) => x.id === transfer.id)!.state, { timeout: 30_000, interval: 10 }).toBe('waiting');
      proxy.setDelay(0);
      const end = await ended(t, transfer.id);
      expect(end).toMatchObject({ state: 'done', done: size });
      expect(end.resumes).toBeGreaterThanOrEqual(1);
      if (direction === 'download') {
        expect(await sha256File(join(local, 'dl.bin'))).toBe(await sha256File(source));
      } else {
        const back = await t.engine.startTransfer({ hostId: 'cuthost', direction: 'download', localPath: join(local, 'up-back.bin'), remotePath: `${remote}/up.bin` });
        expect((await ended(t, back.id)).state).toBe('done');
        expect(await sha256File(join(local, 'up-back.bin'))).toBe(await sha256File(source));
      }
    });
  }
});

describe('transfers of two hosts', () => {
  let rig: Rig | undefined;
  let proxy: TcpProxy;
  let t: TestEngine;
  let local: string;
  let remote: string;

  beforeAll(async () => {
    // One server reached two ways: `down` through a link that fails, `up` directly.
    rig = await startRig({ config: async (sshd, link) => (await behindProxy(sshd, link, 'down')) + sshd.clientConfig('up') });
    ({ proxy, t, local } = rig);
    remote = (await t.engine.makeDirectory('up', `hitch-two-${randomBytes(6).toString('hex')}`)).path;
  });
  afterAll(() => stopRig(rig, 'up', remote));

  it("go on for one host while another's transfers wait for their master to come back", async () => {
    const source = join(local, 'source.bin');
    await writeFile(source, randomBytes(8 * 1024 * 1024));
    for (const name of ['a.bin', 'b.bin', 'c.bin']) {
      const up = await t.engine.startTransfer({ hostId: 'up', direction: 'upload', localPath: source, remotePath: `${remote}/${name}` });
      expect((await ended(t, up.id)).state).toBe('done');
    }
    // Two downloads from `down`, as many as run at once: then its network goes.
    proxy.setDelay(20);
    const stuck = await Promise.all(
      ['a.bin', 'b.bin'].map((name) => t.engine.startTransfer({ hostId: 'down', direction: 'download', localPath: join(local, `down-${name}`), remotePath: `${remote}/${name}` })),
    );
    for (const s of stuck) await expect.poll(() => t.engine.listTransfers().find((x) => x.id === s.id)!.done, { timeout: 60_000, interval: 20 }).toBeGreaterThan(0);
    proxy.blackhole(true);
    proxy.resetAll();
    for (const s of stuck) await expect.poll(() => t.engine.listTransfers().find((x) => x.id === s.id)!.state, { timeout: 30_000, interval: 10 }).toBe('waiting');

    // Meanwhile `up` copies as if nothing happened.
    const other = await t.engine.startTransfer({ hostId: 'up', direction: 'download', localPath: join(local, 'up-c.bin'), remotePath: `${remote}/c.bin` });
    expect((await ended(t, other.id, 30_000)).state).toBe('done');
    expect(await sha256File(join(local, 'up-c.bin'))).toBe(await sha256File(source));
    expect(stuck.map((s) => t.engine.listTransfers().find((x) => x.id === s.id)!.state)).toEqual(['waiting', 'waiting']);

    // And `down`'s go on once its network is back.
    proxy.blackhole(false);
    proxy.setDelay(0);
    for (const s of stuck) {
      expect((await ended(t, s.id)).state).toBe('done');
      expect(await sha256File(s.localPath!)).toBe(await sha256File(source));
    }
  });
});

describe('transfers on an extra connection', () => {
  let rig: Rig | undefined;
  let sshd: Sshd;
  let proxy: TcpProxy;
  let t: TestEngine;
  let local: string;
  let remote: string | undefined;

  beforeAll(async () => {
    rig = await startRig({
      // Two sessions per connection: two shells fill the first, and SFTP goes on a second.
      sshd: { maxSessions: 2 },
      config: (server, link) => behindProxy(server, link, 'full'),
      // An idle SFTP session's extra connection closes 1 s after the last transfer (10 s in the app).
      engine: { processTrees: false, timing: { sftpIdleMs: 1000 } },
    });
    ({ sshd, proxy, t, local } = rig);
  });
  afterAll(() => stopRig(rig, 'full', remote));

  it('keep their connection when another transfer on it ends', async () => {
    const shells = [await t.engine.openSession('full', { kind: 'shell', cols: 80, rows: 24 }), await t.engine.openSession('full', { kind: 'shell', cols: 80, rows: 24 })];
    remote = (await t.engine.makeDirectory('full', `hitch-extra-${randomBytes(6).toString('hex')}`)).path;
    const big = join(local, 'big.bin');
    const small = join(local, 'small.bin');
    await writeFile(big, randomBytes(48 * 1024 * 1024));
    await writeFile(small, 'small\n');
    for (const [path, name] of [[big, 'big.bin'], [small, 'small.bin']] as const) {
      const up = await t.engine.startTransfer({ hostId: 'full', direction: 'upload', localPath: path, remotePath: `${remote}/${name}` });
      expect((await ended(t, up.id)).state).toBe('done');
    }
    const logins = await sshd.acceptedLogins();
    expect(logins).toBe(2); // the shells' connection, and the one SFTP found room on

    proxy.setDelay(50); // the big one is still going when the small one ends
    const long = await t.engine.startTransfer({ hostId: 'full', direction: 'download', localPath: join(local, 'big-back.bin'), remotePath: `${remote}/big.bin` });
    await expect.poll(() => t.engine.listTransfers().find((x) => x.id === long.id)!.done, { timeout: 30_000, interval: 10 }).toBeGreaterThan(0);
    const short = await t.engine.startTransfer({ hostId: 'full', direction: 'download', localPath: join(local, 'small-back.bin'), remotePath: `${remote}/small.bin` });
    expect((await ended(t, short.id)).state).toBe('done');
    expect(t.engine.listTransfers().find((x) => x.id === long.id)!.state).toBe('running');
    proxy.setDelay(0);
    expect(await ended(t, long.id)).toMatchObject({ state: 'done', resumes: 0 });
    expect(await sha256File(join(local, 'big-back.bin'))).toBe(await sha256File(big));
    expect(await sshd.acceptedLogins()).toBe(logins);

    // No transfer left: the extra connection goes a while after, once nothing else is on it,
    // though the master is still held (here by a forward), and the idle SFTP session with it.
    const held = await t.engine.openForward({ hostId: 'full', kind: 'dynamic', listenPort: 0 });
    for (const s of shells) t.engine.closeSession(s.id);
    await expect.poll(async () => (await t.engine.snapshot()).masters.find((m) => m.id.endsWith(`:${proxy.port}`))?.connections, { timeout: 10_000 }).toBe(1);
    await t.engine.cancelForward(held.id);
  });
});

// Local clients that misbehave at the control socket by the thousand: connect, send one frame
// (or garbage, or descriptors), close at once. The engine must live through all of it, leak no
// descriptor, and the master keep serving. (Such clients once aborted the whole process in
// libuv's uv__finish_close: the socket layer freed poll handles libuv was still closing, which
// clients in other processes exiting at once set off.)
import { closeSync, openSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MSG, MessageWriter } from '../../main/engine/control-socket/frames';
import { loadUnix, type Unix } from '../../main/native/unix';
import { UnixConnection } from '../../main/native/unix-socket';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { muxOptions, runStock } from '../fixtures/stock-clients';

let sshd: Sshd;
let t: TestEngine;
let sock: string;
let socketRoot: string;
let unix: Unix;

beforeAll(async () => {
  sshd = await startSshd({ maxSessions: 20 });
  socketRoot = await mkdtemp(join(tmpdir(), 'hitch-churn-'));
  t = await testEngine(sshd.clientConfig('churn'), { controlSocketDir: join(socketRoot, 's') });
  unix = await loadUnix();
  await t.engine.connect('churn');
  for (let i = 0; i < 100 && !sock; i++) {
    sock = (await t.engine.snapshot()).masters[0]?.controlPath ?? '';
    if (!sock) await new Promise((r) => setTimeout(r, 50));
  }
  if (!sock) throw new Error('the master serves no control socket');
});

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
  if (socketRoot) await rm(socketRoot, { recursive: true, force: true });
});

const hello = new MessageWriter(MSG.HELLO).u32(4).frame();
const aliveCheck = new MessageWriter(MSG.C_ALIVE_CHECK).u32(1).frame();
const newSession = new MessageWriter(MSG.C_NEW_SESSION).u32(2).string('').u32(0).u32(0).u32(0).u32(0).u32(0xffffffff).string('').string('true').frame();

/** A tiny deterministic generator, so that a failing run can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

/** Connects with Node's own socket, writes `data`, and closes without waiting for anything. */
function hitAndRun(data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const c = connect(sock);
    c.on('connect', () => c.end(data));
    c.resume(); // read the master's HELLO and whatever follows, to the end
    c.on('error', () => resolve());
    c.on('close', () => resolve());
  });
}

/** Connects, writes `data` with three descriptors passed beside its last byte, and closes at once. */
function hitAndRunWithFds(data: Buffer, fds: number[]): void {
  const c = UnixConnection.connect(unix, sock);
  c.on('error', () => undefined);
  c.write(data.subarray(0, -1));
  c.write(data.subarray(-1), fds);
  c.destroy();
}

async function inBatches(total: number, one: (i: number) => Promise<void> | void): Promise<void> {
  for (let i = 0; i < total; i += 16) await Promise.all(Array.from({ length: Math.min(16, total - i) }, (_, k) => one(i + k)));
}

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

async function stillServing(): Promise<void> {
  const check = await runStock('ssh', [...muxOptions(sock), '-O', 'check', 'churn']);
  expect(check.stderr).toContain('Master running');
  expect(check.code).toBe(0);
  const echo = await runStock('ssh', [...muxOptions(sock), 'churn', 'echo', 'still-here']);
  expect(echo.stdout).toBe('still-here\n');
}

/** `processes` processes, each opening `each` connections that write `frame` and exit at once. */
async function burstFromProcesses(processes: number, each: number, mode: 'plain' | 'fds', frame: Buffer): Promise<void> {
  const script = join(import.meta.dirname, '../fixtures/churn-clients.mjs');
  await Promise.all(
    Array.from(
      { length: processes },
      () =>
        new Promise<void>((resolve, reject) => {
          const child = spawn(process.execPath, [script, sock, String(each), mode, frame.toString('hex')], { stdio: ['ignore', 'ignore', 'inherit'] });
          child.once('error', reject);
          child.once('exit', () => resolve());
        }),
    ),
  );
}

describe('a control socket under churn', () => {
  it('lives through clients in other processes that all exit at once, 9,000 of them in bursts', async () => {
    const before = openDescriptors();
    const shapes: ['plain' | 'fds', Buffer][] = [
      ['plain', aliveCheck],
      ['plain', Buffer.concat([hello, aliveCheck])],
      ['fds', Buffer.concat([hello, aliveCheck, Buffer.from([0])])],
    ];
    for (let round = 0; round < 6; round++) {
      for (const [mode, frame] of shapes) await burstFromProcesses(5, 100, mode, frame);
    }
    await stillServing();
    await expect.poll(openDescriptors, { timeout: 15_000 }).toBeLessThanOrEqual(before + 8);
  }, 120_000);

  it('lives through 2,000 clients that ask ALIVE_CHECK before HELLO and close', async () => {
    const before = openDescriptors();
    await inBatches(2000, () => hitAndRun(aliveCheck));
    await stillServing();
    await expect.poll(openDescriptors, { timeout: 10_000 }).toBeLessThanOrEqual(before + 8);
  }, 120_000);

  it('lives through 2,000 clients that say HELLO, ask once and close', async () => {
    await inBatches(2000, () => hitAndRun(Buffer.concat([hello, aliveCheck])));
    await stillServing();
  }, 120_000);

  it('lives through 2,000 clients that pass descriptors and close at once, closing every descriptor passed', async () => {
    const before = openDescriptors();
    const devNull = [openSync('/dev/null', 'r'), openSync('/dev/null', 'w'), openSync('/dev/null', 'w')];
    // Descriptors with a request that takes none, with a session that is then abandoned, and
    // with no HELLO at all.
    const shapes = [Buffer.concat([hello, aliveCheck, Buffer.from([0])]), Buffer.concat([hello, newSession, Buffer.from([0, 0, 0])]), Buffer.concat([aliveCheck, Buffer.from([0])])];
    await inBatches(2000, async (i) => {
      hitAndRunWithFds(shapes[i % shapes.length]!, devNull);
      if (i % 16 === 15) await new Promise((r) => setTimeout(r, 5));
    });
    await stillServing();
    // Every descriptor the engine received is closed again (ours are three, plus slack for the
    // sessions still winding down).
    await expect.poll(openDescriptors, { timeout: 15_000 }).toBeLessThanOrEqual(before + 3 + 8);
  }, 120_000);

  it('lives through 2,000 clients that send random frames and close (seeded)', async () => {
    const seed = Number(process.env.HITCH_FUZZ_SEED ?? Date.now() % 100_000);
    const next = random(seed);
    // TERMINATE and STOP_LISTENING are requests the owner may make: they would end what this checks.
    const types = Object.values(MSG).filter((type) => type !== MSG.C_TERMINATE && type !== MSG.C_STOP_LISTENING);
    const frames = Array.from({ length: 2000 }, () => {
      const body = Buffer.alloc(Math.floor(next() * 64));
      for (let k = 0; k < body.length; k++) body[k] = Math.floor(next() * 256);
      const type = next() < 0.8 ? types[Math.floor(next() * types.length)]! : 0x20000000 + Math.floor(next() * 2 ** 28);
      const framed = Buffer.alloc(8 + body.length);
      framed.writeUInt32BE(4 + body.length, 0);
      framed.writeUInt32BE(type >>> 0, 4);
      body.copy(framed, 8);
      return next() < 0.5 ? Buffer.concat([hello, framed]) : framed;
    });
    try {
      await inBatches(frames.length, (i) => hitAndRun(frames[i]!));
      await stillServing();
    } catch (err) {
      throw new Error(`with HITCH_FUZZ_SEED=${seed}: ${(err as Error).message}`);
    }
  }, 120_000);

  it('closes a client that passes more descriptors than any request takes, closing them all', async () => {
    const before = openDescriptors();
    const c = UnixConnection.connect(unix, sock);
    c.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => c.on('close', () => resolve()));
    c.on('end', () => c.destroy());
    const fds = Array.from({ length: 4 }, () => openSync('/dev/null', 'r'));
    c.write(hello);
    for (let i = 0; i < 5; i++) c.write(Buffer.from([0]), fds);
    await closed;
    fds.forEach((fd) => closeSync(fd));
    await expect.poll(openDescriptors).toBeLessThanOrEqual(before + 2);
    await stillServing();
  });
});

// With "Use from ssh" installed, every git fetch and rsync is a session through the master's
// control socket. Thousands of them must leave the engine as it was: no session kept, no
// tab, the master remembering only how the last few ended, and the engine's memory flat.
// The engine runs as `hitch daemon`, a process of its own, so its RSS is the engine's alone.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE_NODE_FLAGS } from '../../main/engine/node-flags';
import { MSG, MessageWriter } from '../../main/engine/control-socket/frames';
import { loadUnix, type Unix } from '../../main/native/unix';
import { UnixConnection } from '../../main/native/unix-socket';
import { connectEngineSocket, type EngineConnection } from '../../main/transport/engine-socket';
import type { Snapshot } from '../../preload/api';
import { hitchEnv } from '../fixtures/built';
import { startSshd, type Sshd } from '../fixtures/sshd';

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../out/main/cli.js');
const RUNS = Number(process.env.HITCH_EXTERNAL_RUNS ?? 2000);
/**
 * A fresh engine is not yet at its working size: code is still being compiled and optimised,
 * and V8 sizes its old generation (64 MB at first, with the engine's flags) over a few thousand
 * sessions. Growth is measured after these, from readings taken after a full collection.
 * After 1,000 the RSS reading still rose by up to 4 MB over the next 2,000 (and by 3 MB over the
 * next 10,000: settling, not growth per session).
 */
const WARM_UP = Number(process.env.HITCH_EXTERNAL_WARMUP ?? 3000);
/**
 * Issue #12's bound is 5 MB of RSS over 10,000 sessions, 0.5 kB each. Fewer sessions run here,
 * so what they leave is judged two ways:
 * - Live memory (V8's heap in use and the external memory it accounts for, Buffers among it),
 *   after a full collection: issue #12's rate plus 1.5 MB, from the lower of two readings
 *   (before, and halfway) to the lower of two (after, and once more after it). A single
 *   reading can be high for a while and then fall back: over 2,000 sessions single readings
 *   stood up to +3.2 MB and once +9.7 MB above the others (halfway, back after), with this code
 *   and the day before's alike; a leak raises every reading after it. A Buffer of 2 kB kept
 *   per session failed the single-reading check by 2–3 MB; an object of ~0.5 kB per session,
 *   issue #12's own rate, did not.
 * - RSS, which also holds what the C library keeps after freeing and V8's unused pages: issue
 *   #12's rate plus 9 MB. With the engine's flags, which let more garbage gather between full
 *   collections, readings after one moved by -2.2 to +8.9 MB over 2,000 sessions in ~40 runs
 *   (most within +2 MB), the live memory flat where it was read, while 10,000 sessions
 *   (`HITCH_EXTERNAL_RUNS=10000`, ~25 s) grew it by 1.9 MB. This bound catches gross growth
 *   outside V8, say in the native addon; a leak in JavaScript or Buffers fails the first.
 */
const LIVE_BOUND_MB = (5 * RUNS) / 10_000 + 1.5;
const RSS_BOUND_MB = (5 * RUNS) / 10_000 + 9;
/** RSS is read every STEP sessions: the growth is judged from the lowest reading, not only the first. */
const STEP = 500;

let sshd: Sshd;
let dir: string;
let daemon: ChildProcess;
let engine: EngineConnection;
let controlPath: string;
let unix: Unix;
let devNull: number[];
/** The daemon's inspector (started on loopback for this test alone): to collect its garbage before each reading. */
let inspector: WebSocket;

beforeAll(async () => {
  sshd = await startSshd({ maxSessions: 20 });
  dir = await mkdtemp(join(tmpdir(), 'hitch-extmem-'));
  await writeFile(join(dir, 'ssh_config'), sshd.clientConfig('box'));
  const env = hitchEnv(dir);
  // Started as `hitch --start` starts it (main/cli/context.ts), with the engine's Node flags.
  daemon = spawn(process.execPath, [...ENGINE_NODE_FLAGS, '--inspect=127.0.0.1:0', CLI, 'daemon', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const inspectorUrl = new Promise<string>((ok) =>
    daemon.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const url = /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
      if (url) ok(url);
    }),
  );
  await new Promise<void>((ok, fail) => {
    daemon.stdout!.once('data', () => ok());
    daemon.once('exit', (code) => fail(new Error(`hitch daemon exited with ${code}: ${stderr}`)));
  });
  inspector = new WebSocket(await inspectorUrl);
  await new Promise((ok, fail) => inspector.once('open', ok).once('error', fail));
  await run(process.execPath, [CLI, 'connect', 'box'], { env });
  const socket = JSON.parse((await run(process.execPath, [CLI, 'socket', 'box', '--json'], { env })).stdout) as { controlPath: string };
  controlPath = socket.controlPath;
  engine = await connectEngineSocket(join(dir, 'run', 'engine.sock'));
  unix = await loadUnix();
  devNull = [openSync('/dev/null', 'r'), openSync('/dev/null', 'w'), openSync('/dev/null', 'w')];
}, 60_000);

afterAll(async () => {
  inspector?.close();
  engine?.close();
  daemon?.kill('SIGKILL');
  devNull?.forEach((fd) => closeSync(fd));
  await sshd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const hello = new MessageWriter(MSG.HELLO).u32(4).frame();
const session = (command: string): Buffer =>
  new MessageWriter(MSG.C_NEW_SESSION).u32(1).string('').u32(0).u32(0).u32(0).u32(0).u32(0xffffffff).string('').string(command).frame();

/** What `ssh -S SOCK box COMMAND` does with its stdin, stdout and stderr on /dev/null: the exit status. */
function muxRun(command: string): Promise<number> {
  return new Promise((ok, fail) => {
    const c = UnixConnection.connect(unix, controlPath);
    let buffer = Buffer.alloc(0);
    c.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 8 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
        const type = buffer.readUInt32BE(4);
        const body = buffer.subarray(8, 4 + buffer.readUInt32BE(0));
        buffer = buffer.subarray(4 + buffer.readUInt32BE(0));
        if (type === MSG.S_EXIT_MESSAGE) {
          c.destroy();
          ok(body.readUInt32BE(4));
        } else if (type === MSG.S_FAILURE || type === MSG.S_PERMISSION_DENIED) {
          c.destroy();
          fail(new Error(`refused: ${body.subarray(8).toString()}`));
        }
      }
    });
    c.on('error', fail);
    c.write(Buffer.concat([hello, session(command)]));
    for (const fd of devNull) c.write(Buffer.from([0]), [fd]);
  });
}

async function runMany(count: number, parallel: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        expect(await muxRun('true')).toBe(0);
      }
    }),
  );
}

function rssMb(pid: number): number {
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return kb / 1024;
}

/**
 * The daemon's RSS and live memory (MB) after a full garbage collection. Read at any other
 * moment RSS holds tens of MB of garbage, more or less wherever V8's cycle happened to be.
 */
async function collectedMemory(pid: number): Promise<{ rss: number; live: number }> {
  await inspect('HeapProfiler.collectGarbage');
  // V8 hands the pages a collection emptied back to the system from a background task: give it
  // a moment, then collect again.
  await new Promise((r) => setTimeout(r, 500));
  await inspect('HeapProfiler.collectGarbage');
  const usage = (await inspect('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())' })) as { result: { value: string } };
  const { heapUsed, external } = JSON.parse(usage.result.value) as NodeJS.MemoryUsage;
  return { rss: rssMb(pid), live: (heapUsed + external) / 1048576 };
}

/** One call on the daemon's inspector, and its result. */
async function inspect(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  const id = Math.floor(Math.random() * 1e9);
  const done = new Promise<unknown>((ok) => {
    const onMessage = (raw: WebSocket.RawData): void => {
      const message = JSON.parse(String(raw)) as { id?: number; result?: unknown };
      if (message.id !== id) return;
      inspector.off('message', onMessage);
      ok(message.result);
    };
    inspector.on('message', onMessage);
  });
  inspector.send(JSON.stringify({ id, method, params }));
  return done;
}

/** The process's RSS high-water mark (VmHWM), for the log. */
function peakRssMb(pid: number): number {
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function state(): Promise<Snapshot> {
  const reply = await engine.call('state.get', {});
  if (!reply.ok) throw new Error(reply.error.message);
  return reply.result as Snapshot;
}

// Issue #12: 10,000 sessions grow the engine's RSS by at most 5 MB, measured from a warmed-up
// engine (see WARM_UP): what is asked is that memory stays flat, not that a fresh process
// is at its working size. (Without ENGINE_NODE_FLAGS that size is ~23 MB larger: V8 doubles the
// young generation twice under this load, 2 × 4 → 2 × 16 MB, in the first couple of thousand
// sessions, and RSS stays there.)
describe('thousands of stock-client sessions through one master', () => {
  it('keep no session, remember five, and leave the engine’s memory flat', async () => {
    await runMany(WARM_UP, 8);
    await expect.poll(async () => (await state()).sessions.length, { timeout: 10_000 }).toBe(0);
    const before = await collectedMemory(daemon.pid!);
    let lowest = before.rss;
    const started = Date.now();
    let middle = before;
    for (let done = 0; done < RUNS; done += STEP) {
      await runMany(Math.min(STEP, RUNS - done), 8);
      lowest = Math.min(lowest, rssMb(daemon.pid!));
      if (done + STEP >= RUNS / 2 && middle === before && done + STEP < RUNS) {
        await expect.poll(async () => (await state()).sessions.length, { timeout: 10_000 }).toBe(0);
        middle = await collectedMemory(daemon.pid!);
      }
    }
    console.log(`${RUNS} sessions in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await expect.poll(async () => (await state()).sessions.length, { timeout: 10_000 }).toBe(0);
    const after = await collectedMemory(daemon.pid!);
    const again = await collectedMemory(daemon.pid!);
    const peak = peakRssMb(daemon.pid!);
    const snap = await state();
    expect(snap.masters[0]!.recentExternal).toHaveLength(5);
    expect(snap.masters[0]!.recentExternal.every((s) => s.title === 'box: true' && s.exitCode === 0)).toBe(true);
    await expect.poll(async () => (await state()).masters[0]!.sessions, { timeout: 10_000 }).toBe(0);
    // HITCH_EXTERNAL_RUNS=10000 runs all of issue #12's. RSS from the lowest reading too: one
    // taken at a high point of V8's cycle would hide growth after it.
    const summary =
      `engine RSS ${before.rss.toFixed(1)} MB before, ${lowest.toFixed(1)} MB at least, ${after.rss.toFixed(1)} MB after, ${peak.toFixed(1)} MB at most; ` +
      `live ${before.live.toFixed(1)} MB before, ${middle.live.toFixed(1)} MB halfway, ${after.live.toFixed(1)} and ${again.live.toFixed(1)} MB after`;
    console.log(summary);
    expect(middle).not.toBe(before); // read halfway
    expect(Math.min(after.live, again.live) - Math.min(before.live, middle.live), summary).toBeLessThanOrEqual(LIVE_BOUND_MB);
    expect(after.rss - before.rss, summary).toBeLessThanOrEqual(RSS_BOUND_MB);
    expect(after.rss - lowest, summary).toBeLessThanOrEqual(RSS_BOUND_MB);
    expect(await sshd.acceptedLogins()).toBe(1);
  }, 60_000 + (WARM_UP + RUNS) * 40);
});

// Every client of the engine has its own context. Two pages of the web host and a `hitch exec`
// run as a real process share one engine and one real sshd: each page receives the output of
// the sessions it attached to and of no other, the command's output reaches only the command,
// a page that closes takes its own sessions with it (and nobody else's), and a page that
// reloads takes its sessions back with their scrollback.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localApi } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import { MAX_ENDED_SESSIONS } from '../../main/engine/engine';
import { serveEngineSocket, type EngineSocketServer } from '../../main/transport/engine-socket';
import { startWebHost, type WebHost } from '../../main/web/server';
import type { HitchEvent, Reply, SessionView, Snapshot } from '../../preload/api';
import { CLI, ensureBuilt } from '../fixtures/built';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { startSshd, type Sshd } from '../fixtures/sshd';

const GRACE_MS = 1_500;

let sshd: Sshd;
let t: TestEngine;
let host: WebHost;
let socket: EngineSocketServer;
let base: string;

beforeAll(async () => {
  await ensureBuilt();
  sshd = await startSshd();
  t = await testEngine(sshd.clientConfig('testhost'));
  base = await mkdtemp(join(tmpdir(), 'hitch-clients-'));
  const staticDir = join(base, 'renderer');
  await mkdir(staticDir);
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hitch</title>');
  const log = t.engine.options.log;
  const api = localApi(createRouter(t.engine, log), { reloadGraceMs: GRACE_MS });
  host = await startWebHost({ api, staticDir, log });
  socket = await serveEngineSocket({ api, runtimeDir: join(base, 'run'), log });
}, 60_000);

afterAll(async () => {
  await host?.close();
  await socket?.close();
  await t?.close();
  await sshd?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

/** A page of the web host, as the renderer is one: what it received, and calls by id. */
interface Page {
  events: HitchEvent[];
  call<T = unknown>(method: string, params: unknown): Promise<T>;
  /** The text of a session's output this page received. */
  output(sessionId: string): string;
  waitFor(what: string, check: () => boolean, timeoutMs?: number): Promise<void>;
  /** Stops reading from the socket (a busy page), and reads again. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

class CallError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

async function openPage(): Promise<Page> {
  const origin = `http://127.0.0.1:${host.port}`;
  const ws = new WebSocket(`ws://127.0.0.1:${host.port}/api?token=${host.token}`, { headers: { origin } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const events: HitchEvent[] = [];
  const waiting = new Map<number, (reply: Reply) => void>();
  let nextId = 1;
  ws.on('message', (raw) => {
    const message = JSON.parse(String(raw)) as Record<string, unknown>;
    if (typeof message.event === 'string') events.push(message as unknown as HitchEvent);
    else if (typeof message.id === 'number') waiting.get(message.id)?.(message as unknown as Reply);
  });
  const page: Page = {
    events,
    call(method, params) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, (reply) => (reply.ok ? resolve(reply.result as never) : reject(new CallError(reply.error.code, reply.error.message))));
        ws.send(JSON.stringify({ id, method, params }));
      });
    },
    output: (sessionId) =>
      events
        .filter((e): e is Extract<HitchEvent, { event: 'session.data' }> => e.event === 'session.data' && e.payload.sessionId === sessionId)
        .map((e) => e.payload.data)
        .join(''),
    async waitFor(what, check, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    pause: () => (ws as unknown as { _socket: { pause(): void } })._socket.pause(),
    resume: () => (ws as unknown as { _socket: { resume(): void } })._socket.resume(),
    close: () =>
      new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
  return page;
}

/** A page as the renderer starts one: named by its key, following the engine's state. */
async function startPage(key: string): Promise<{ page: Page; held: SessionView[] }> {
  const page = await openPage();
  const { sessions: held } = await page.call<{ sessions: SessionView[] }>('client.identify', { key });
  await page.call('state.get', { watch: true });
  return { page, held };
}

async function typeAndSee(page: Page, sessionId: string, n: number): Promise<void> {
  await page.call('session.write', { sessionId, data: `echo mark-$((${n}+1))\n` });
  await page.waitFor(`mark-${n + 1} in ${sessionId}`, () => page.output(sessionId).includes(`mark-${n + 1}`));
}

const isOpen = async (sessionId: string): Promise<boolean> =>
  (await t.engine.snapshot()).sessions.some((s: Snapshot['sessions'][number]) => s.id === sessionId && s.state === 'open');

describe('two pages and a hitch command on one engine', () => {
  it('stream to each only what it attached to, end only what a closed page held, and give a reloaded page its sessions back', async () => {
    const { page: a } = await startPage('page-a-key-0000000001');
    const { page: b } = await startPage('page-b-key-0000000001');
    const sa = await a.call<SessionView>('session.open', { hostId: 'testhost', cols: 80, rows: 24 });
    const sb = await b.call<SessionView>('session.open', { hostId: 'testhost', cols: 80, rows: 24 });
    await typeAndSee(a, sa.id, 100);
    await typeAndSee(b, sb.id, 200);
    // Each page heard of both sessions (it follows the state) but streamed only its own.
    expect(a.events.some((e) => e.event === 'session.changed' && e.payload.id === sb.id)).toBe(true);
    expect(a.output(sb.id)).toBe('');
    expect(b.output(sa.id)).toBe('');

    // A `hitch exec` run: its output goes to the command, and nowhere else.
    const run = promisify(execFile)(process.execPath, [CLI, 'exec', 'testhost', '--', 'echo exec-started; sleep 2; echo exec-secret-$((6*7))'], {
      env: { ...process.env, HITCH_RUNTIME_DIR: join(base, 'run') },
    });
    let exec: SessionView | undefined;
    await b.waitFor('the exec session', () => {
      exec = b.events.flatMap((e) => (e.event === 'session.changed' && e.payload.private && e.payload.state === 'open' ? [e.payload] : [])).at(-1);
      return exec !== undefined;
    });
    const refused = await b.call('session.attach', { sessionId: exec!.id }).catch((err: CallError) => err);
    expect(refused).toBeInstanceOf(CallError);
    expect((refused as CallError).code).toBe('forbidden');
    // Nor may it type into it or end it.
    for (const [method, params] of [
      ['session.write', { sessionId: exec!.id, data: 'x' }],
      ['session.close', { sessionId: exec!.id }],
    ] as const) {
      const denied = await b.call(method, params).catch((err: CallError) => err);
      expect((denied as CallError).code, method).toBe('forbidden');
    }
    const { stdout } = await run;
    expect(stdout).toBe('exec-started\nexec-secret-42\n');
    for (const page of [a, b]) {
      expect(page.events.some((e) => e.event === 'session.data' && e.payload.sessionId === exec!.id)).toBe(false);
      expect(JSON.stringify(page.events)).not.toContain('exec-secret-42'); // the command line is listed, its output is not
    }

    // Page A closes: its shell ends once the grace period is over; B's goes on.
    await a.close();
    expect(await isOpen(sa.id)).toBe(true); // a reload could still take it back
    await b.waitFor(`${sa.id} removed`, () => b.events.some((e) => e.event === 'session.removed' && e.payload.sessionId === sa.id), GRACE_MS + 10_000);
    expect(await isOpen(sb.id)).toBe(true);

    // Page B reloads: the new page, under the same key, holds sB again and sees its scrollback.
    await b.close();
    const { page: reloaded, held } = await startPage('page-b-key-0000000001');
    expect(held.map((s) => s.id)).toEqual([sb.id]);
    const scrollback = await reloaded.call<{ data: string; end: number }>('session.attach', { sessionId: sb.id });
    expect(scrollback.data).toContain('mark-201');
    await new Promise((r) => setTimeout(r, GRACE_MS + 500));
    expect(await isOpen(sb.id)).toBe(true); // taken back, not ended with the page before
    await typeAndSee(reloaded, sb.id, 300);
    // Output streamed from where the scrollback ended, with nothing repeated.
    const firstData = reloaded.events.find((e) => e.event === 'session.data' && e.payload.sessionId === sb.id);
    expect(firstData?.event === 'session.data' && firstData.payload.offset).toBe(scrollback.end);
    await reloaded.close();
  }, 60_000);

  it("keeps a client's finished sessions only up to a bound, newest last", async () => {
    t.engine.clientJoined('keeper');
    const ids: string[] = [];
    for (let i = 0; i < MAX_ENDED_SESSIONS + 10; i++) {
      // One clean-clone run saw sshd refuse one of these execs (cause not found): a refusal says why, from sshd's log.
      const s = await t.engine.openSession('testhost', { kind: 'exec', command: 'true', pty: null }, { owner: 'keeper' }).catch(async (err: Error) => {
        const log = (await readFile(sshd.logFile, 'utf8')).split('\n').slice(-20).join('\n');
        throw new Error(`${err.message}\nsshd's log, last lines:\n${log}`);
      });
      ids.push(s.id);
    }
    const ended = async (): Promise<string[]> => (await t.engine.snapshot()).sessions.filter((s) => ids.includes(s.id) && s.state !== 'open').map((s) => s.id);
    const deadline = Date.now() + 20_000;
    while ((await t.engine.snapshot()).sessions.some((s) => ids.includes(s.id) && s.state === 'open') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const kept = await ended();
    expect(kept).toHaveLength(MAX_ENDED_SESSIONS);
    expect(kept).toContain(ids.at(-1)); // the newest are kept, the oldest let go
    expect(kept).not.toContain(ids[0]);
    t.engine.clientLeft('keeper', 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(await ended()).toEqual([]); // their client gone, nobody is left to show them to
  }, 60_000);

  it('stops streaming a session to a page that detached from it', async () => {
    const { page } = await startPage('page-c-key-0000000001');
    const s = await page.call<SessionView>('session.open', { hostId: 'testhost', cols: 80, rows: 24 });
    await typeAndSee(page, s.id, 400);
    await page.call('session.detach', { sessionId: s.id });
    const before = page.output(s.id);
    await t.engine.writeSession(s.id, 'echo after-$((500+1))\n');
    await t.waitForOutput(s.id, /after-501/);
    await new Promise((r) => setTimeout(r, 200));
    expect(page.output(s.id)).toBe(before);
    await page.call('session.close', { sessionId: s.id });
    await page.close();
  });

  it('hold a flood for a page that stops reading, and give it every character once it reads again', async () => {
    // 40 MB of output while the page reads nothing for 3 s: more than the web host keeps for
    // a page (16 MB) before dropping it, unless the session waits for the page.
    const { page } = await startPage('page-d-key-0000000001');
    const chars = 40_000_000;
    const s = await page.call<SessionView>('session.exec', { hostId: 'testhost', command: `yes | head -c ${chars}`, cols: 80, rows: 24, pty: false });
    page.pause();
    await new Promise((r) => setTimeout(r, 3_000));
    page.resume();
    await page.waitFor('the end of the flood', () => page.events.some((e) => e.event === 'session.changed' && e.payload.id === s.id && e.payload.state !== 'open'), 30_000);
    expect(page.output(s.id).length).toBe(chars);
    const end = page.events.filter((e) => e.event === 'session.changed' && e.payload.id === s.id).at(-1);
    expect(end).toMatchObject({ payload: { state: 'closed', exitCode: 0 } });
    await page.call('session.close', { sessionId: s.id });
    await page.close();
  }, 60_000);
});

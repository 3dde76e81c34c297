// A terminal that falls behind holds its session back (issue #14, VS Code's terminal flow
// control): a page of the web host attaches a shell with `ack` and acknowledges what it has
// drawn. Pages here read every message the moment it comes (their transport never fills), so
// only acknowledgements can hold the shell: one that stops acknowledging gets no more output a
// little past TERMINAL_FLOW.highChars (skipHighChars for a durable shell). An ordinary shell
// is then stopped by the SSH window and gives the page every line once it acknowledges again.
// A durable one (tmux) goes on at full speed on the host, its output skipped, and the page's
// terminal is redrawn from tmux once it acknowledges again (the flood's last lines in its
// history). A client that never asked for it (the `hitch` command, an older page) is never
// held by it.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { localApi } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import { startWebHost, type WebHost } from '../../main/web/server';
import { TERMINAL_FLOW, type HitchEvent, type Reply, type SessionView } from '../../preload/api';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { startSshd, type Sshd } from '../fixtures/sshd';

let sshd: Sshd;
let base: string;
/** One engine with ordinary shells, one with durable ones, each behind a web host. */
const hosts: { t: TestEngine; host: WebHost }[] = [];
/** Shells the tests opened: each is closed and seen to end after its test (a durable one is killed in tmux). */
const shells: { page: Page; sessionId: string }[] = [];

async function engineBehindWebHost(durableShells: boolean): Promise<WebHost> {
  const t = await testEngine(sshd.clientConfig('testhost'), { durableShells, processTrees: false, controlSocketDir: null });
  const staticDir = join(base, 'renderer');
  const host = await startWebHost({ api: localApi(createRouter(t.engine, t.engine.options.log)), staticDir, log: t.engine.options.log });
  hosts.push({ t, host });
  return host;
}

let plain: WebHost;
let durable: WebHost;

beforeAll(async () => {
  sshd = await startSshd();
  base = await mkdtemp(join(tmpdir(), 'hitch-flow-'));
  await mkdir(join(base, 'renderer'));
  await writeFile(join(base, 'renderer/index.html'), '<!doctype html><title>Hitch</title>');
  plain = await engineBehindWebHost(false);
  durable = await engineBehindWebHost(true);
}, 60_000);

afterEach(async () => {
  for (const { page, sessionId } of shells.splice(0)) {
    await page.call('session.close', { sessionId }).catch(() => undefined);
    await page.waitFor(`${sessionId} to end`, () => page.ended(sessionId), 15_000).catch(() => undefined);
    page.close();
  }
});

afterAll(async () => {
  for (const { t, host } of hosts) {
    await host.close();
    await t.close();
  }
  await sshd?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A page of the web host that reads every message at once and keeps the output of its sessions. */
async function openPage(host: WebHost) {
  const ws = new WebSocket(`ws://127.0.0.1:${host.port}/api?token=${host.token}`, { headers: { origin: `http://127.0.0.1:${host.port}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const output = new Map<string, string>();
  const resets = new Map<string, number>();
  /** Characters received, redraws included: what a terminal acknowledges. */
  const received = new Map<string, number>();
  const ended = new Set<string>();
  const waiting = new Map<number, (reply: Reply) => void>();
  let nextId = 1;
  ws.on('message', (raw) => {
    const message = JSON.parse(String(raw)) as Record<string, unknown>;
    if (message.event === 'session.data') {
      const { sessionId, data, reset } = (message as Extract<HitchEvent, { event: 'session.data' }>).payload;
      // A redraw starts the terminal over, as TerminalView's reset does.
      if (reset) resets.set(sessionId, (resets.get(sessionId) ?? 0) + 1);
      received.set(sessionId, (received.get(sessionId) ?? 0) + data.length);
      output.set(sessionId, (reset ? '' : (output.get(sessionId) ?? '')) + data);
    } else if (message.event === 'session.changed' || message.event === 'session.removed') {
      const payload = message.payload as { id?: string; sessionId?: string; state?: string };
      if (message.event === 'session.removed' || payload.state !== 'open') ended.add(payload.id ?? payload.sessionId ?? '');
    } else if (typeof message.id === 'number') waiting.get(message.id)?.(message as unknown as Reply);
  });
  const page = {
    call<T = unknown>(method: string, params: unknown): Promise<T> {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, (reply) => (reply.ok ? resolve(reply.result as T) : reject(new CallError(reply.error.code, reply.error.message))));
        ws.send(JSON.stringify({ id, method, params }));
      });
    },
    output: (sessionId: string): string => output.get(sessionId) ?? '',
    resets: (sessionId: string): number => resets.get(sessionId) ?? 0,
    received: (sessionId: string): number => received.get(sessionId) ?? 0,
    ended: (sessionId: string): boolean => ended.has(sessionId),
    async waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => ws.close(),
  };
  return page;
}
type Page = Awaited<ReturnType<typeof openPage>>;

/** A shell of this page, attached as the renderer attaches it (`ack`) or as older clients do. */
async function shell(page: Page, ack: boolean): Promise<string> {
  const view = await page.call<SessionView>('session.open', { hostId: 'testhost', cols: 80, rows: 24 });
  shells.push({ page, sessionId: view.id });
  await page.call('session.attach', ack ? { sessionId: view.id, ack: true } : { sessionId: view.id });
  await page.call('session.write', { sessionId: view.id, data: 'stty -echo; echo shell-$((40+2))\n' });
  await page.waitFor('the shell', () => page.output(view.id).includes('shell-42'));
  return view.id;
}

/** `seq 1 N` as a terminal shows it. */
const seqLines = (n: number): string => Array.from({ length: n }, (_, i) => `${i + 1}\r\n`).join('');

/** The flood as the page got it after `before`: the shell's own codes, then every line of seq once and in order, then the marker. */
function expectWholeFlood(text: string, lines: number): void {
  const start = text.indexOf('1\r\n2\r\n');
  expect(start).toBeGreaterThanOrEqual(0);
  expect(start).toBeLessThan(64); // the shell's prompt and terminal modes
  expect(text.slice(start, start + seqLines(lines).length) === seqLines(lines)).toBe(true);
  expect(text.slice(start + seqLines(lines).length)).toMatch(/^flood-end\r\n/);
}

/** Waits until the page's output of the session has not grown for a while (or the flood ended). */
async function settled(page: Page, sessionId: string, end: string): Promise<number> {
  let last = -1;
  while (page.output(sessionId).length !== last && !page.output(sessionId).includes(end)) {
    last = page.output(sessionId).length;
    await new Promise((r) => setTimeout(r, 700));
  }
  return page.output(sessionId).length;
}

/** Acknowledges what the page has received of the session, as it arrives, until `end` is in it. */
async function acknowledgeUntil(page: Page, sessionId: string, from: number, end: string): Promise<void> {
  let acked = from;
  const deadline = Date.now() + 60_000;
  while (!page.output(sessionId).includes(end)) {
    if (Date.now() > deadline) throw new Error(`no ${end} while acknowledging`);
    const received = page.received(sessionId);
    if (received > acked) await page.call('session.ack', { sessionId, chars: received - acked });
    acked = received;
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each([
  ['an ordinary shell', () => plain, 1_000_000, true, TERMINAL_FLOW.highChars],
  ['a durable shell (tmux)', () => durable, 300_000, false, TERMINAL_FLOW.skipHighChars],
])('flow control on %s', (_name, host, lines, everyLine, highChars) => {
  it(`holds the output of a page that stops acknowledging, and once it acknowledges again ${everyLine ? 'gives it every line' : 'redraws it from tmux'}`, async () => {
    const page = await openPage(host());
    const sessionId = await shell(page, true);
    const before = page.output(sessionId).length;
    // The end marker is printed after seq; the command line (no echo) never shows it.
    await page.call('session.write', { sessionId, data: `seq 1 ${lines}; echo flood-"end"\n` });
    const received = await settled(page, sessionId, 'flood-end');
    // Stopped a little past the high-water mark (a batch, a packet): far short of seq's output.
    // Nothing was acknowledged since the shell was attached: the prompt before the flood counts
    // too (once, it stopped 53 characters short of the mark counted from the flood alone).
    expect(page.output(sessionId)).not.toContain('flood-end');
    expect(received).toBeGreaterThan(highChars);
    expect(received - before).toBeLessThan(4 * highChars);

    if (everyLine) {
      await acknowledgeUntil(page, sessionId, before, 'flood-end');
      expectWholeFlood(page.output(sessionId).slice(before), lines);
      expect(page.resets(sessionId)).toBe(0);
      return;
    }
    // Acknowledged: redrawn from tmux, the screen first, then with the flood's last lines as
    // history once the pane is quiet; what was skipped never comes.
    await acknowledgeUntil(page, sessionId, 0, 'flood-end');
    await page.waitFor('the redraw with history', () => /\r\n290001\r\n/.test(page.output(sessionId)), 10_000);
    const redrawn = page.output(sessionId);
    expect(page.resets(sessionId)).toBeGreaterThanOrEqual(1);
    const lastLines = Array.from({ length: 10_000 }, (_, i) => `${lines - 9_999 + i}\r\n`).join('');
    expect(redrawn.includes(lastLines)).toBe(true);
    expect(redrawn).toMatch(/\r\n299999\r\n300000\r\nflood-end\r\n/);
  }, 120_000);

  it('never holds a page that did not ask to acknowledge', async () => {
    const page = await openPage(host());
    const sessionId = await shell(page, false);
    const before = page.output(sessionId).length;
    await page.call('session.write', { sessionId, data: `seq 1 ${lines}; echo flood-"end"\n` });
    await page.waitFor('the end of the flood, with no acknowledgement', () => page.output(sessionId).includes('flood-end'), 60_000);
    expectWholeFlood(page.output(sessionId).slice(before), lines);
  }, 120_000);
});

describe('session.ack', () => {
  it('is checked like every request, and ignored for a session not attached with ack', async () => {
    const page = await openPage(plain);
    const sessionId = await shell(page, false);
    for (const params of [
      { sessionId, chars: 0 },
      { sessionId, chars: -5 },
      { sessionId, chars: 1.5 },
      { sessionId, chars: '5000' },
      { sessionId },
      { sessionId: 'x1', chars: 5000 },
      { sessionId, chars: 5000, extra: true },
    ]) {
      await expect(page.call('session.ack', params), JSON.stringify(params)).rejects.toMatchObject({ code: 'bad-request' });
    }
    await expect(page.call('session.attach', { sessionId, ack: 'yes' })).rejects.toMatchObject({ code: 'bad-request' });
    await expect(page.call('session.ack', { sessionId, chars: 5000 })).resolves.toBeNull();
  });
});

// Durable shells against a real sshd with tmux, the network between Hitch and the server cut
// by a TCP proxy: the shell and its jobs keep running on the host, and after the master
// reconnects the tab rejoins the same shell (same pid), redrawn with what it printed meanwhile.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { localApi } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import { ENGINE_NODE_FLAGS } from '../../main/engine/node-flags';
import { sessionsOutputSchema } from '../../main/cli/schemas';
import { connectEngineSocket, serveEngineSocket } from '../../main/transport/engine-socket';
import type { SessionView, Snapshot } from '../../preload/api';
import { HitchClient } from '../../preload/client';
import { CLI, ensureBuilt, hitchEnv } from '../fixtures/built';
import { masterOf, sessionView, shellAnswers, testEngine, type TestEngine } from '../fixtures/engine';
import { startSshd, TEST_PASSWORD, type Sshd } from '../fixtures/sshd';
import { behindProxy, startProxy, type TcpProxy } from '../fixtures/tcp-proxy';

const SHELL = { kind: 'shell', cols: 80, rows: 24 } as const;
// Keepalives every 500 ms, three missed: a silent network is noticed within two seconds.
const TIMING = { keepaliveIntervalMs: 500, keepaliveCountMax: 3, connectTimeoutMs: 15_000 };

let sshd: Sshd;
let proxy: TcpProxy;
let t: TestEngine;
let config: string;

beforeAll(async () => {
  await ensureBuilt();
  sshd = await startSshd();
  // A tmux server an earlier run of these tests left to the test user is not ours to trust.
  await promisify(execFile)('pkill', ['-u', sshd.user, 'tmux']).catch(() => undefined);
  proxy = await startProxy({ targetPort: sshd.port });
  config = (await behindProxy(sshd, proxy, 'web1')) + sshd.clientConfig('direct');
  t = await testEngine(config, { durableShells: true, timing: TIMING });
}, 30_000);

afterAll(async () => {
  // Hitch's tmux server on the test host goes with the tests.
  const kill = await t?.engine.openSession('direct', { kind: 'exec', command: 'pkill -u "$(id -u)" -f "^tmux -L hitch "; echo server-gone', pty: null }).catch(() => null);
  if (kill) await t.waitForOutput(kill.id, /server-gone/).catch(() => undefined);
  await t?.close();
  await proxy?.close();
  await sshd?.stop();
});

// A test that fails with the network cut must not fail every test after it.
afterEach(() => {
  proxy?.blackhole(false);
  proxy?.blackholeToClient(false);
});

/** Serves the test engine on an engine socket of its own, for `hitch` processes. */
async function withEngineSocket(work: (runtimeDir: string) => Promise<void>, engine = t.engine): Promise<void> {
  const runtimeDir = await mkdtemp(join(tmpdir(), 'hitch-durable-run-'));
  const server = await serveEngineSocket({ api: localApi(createRouter(engine, engine.options.log)), runtimeDir, log: engine.options.log });
  try {
    await work(runtimeDir);
  } finally {
    await server.close();
    await rm(runtimeDir, { recursive: true, force: true });
  }
}

/** `hitch shell HOST` on a terminal (util-linux's script gives it one, as a person's would be). */
function shellOnTerminal(
  host: string,
  runtimeDir: string,
  /** Answers a question the output so far ends with (the text to type), or null. */
  answer: (out: string) => string | null = () => null,
): { type(text: string): void; seen(pattern: RegExp): Promise<RegExpMatchArray>; exited: Promise<number | null>; kill(): void } {
  const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} shell ${host}`, '/dev/null'], {
    env: { ...process.env, HITCH_RUNTIME_DIR: runtimeDir, TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  const onData = (d: string): void => {
    out += d;
    const typed = answer(out);
    if (typed === null) return;
    out += '\n'; // answered: the question no longer ends the output
    child.stdin.write(typed);
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  return {
    type: (text) => child.stdin.write(text),
    seen: (pattern) => expect.poll(() => pattern.exec(out), { timeout: 15_000, interval: 50 }).toBeTruthy().then(() => pattern.exec(out)!),
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    kill: () => child.kill(),
  };
}

/** Types a command and waits for its answer (`n` makes it unique); returns the match. */
let marks = 0;
async function ask(sessionId: string, command: (n: number) => string, answer: (n: number) => RegExp): Promise<RegExpMatchArray> {
  const n = ++marks + 1000;
  await t.engine.writeSession(sessionId, command(n) + '\n');
  return t.waitForOutput(sessionId, answer(n), 10_000);
}

/** The tmux sessions of Hitch's server on the test host (asked over the other master). */
async function tmuxSessions(): Promise<string[]> {
  const s = await t.engine.openSession('direct', { kind: 'exec', command: "tmux -L hitch list-sessions -F '#{session_name}' 2>/dev/null; echo end-of-list", pty: null });
  return (await t.waitForOutput(s.id, /([^]*)end-of-list/))[1]!.split('\n').filter(Boolean).sort();
}

const shellPid = async (sessionId: string): Promise<number> => Number((await ask(sessionId, (n) => `echo pid-${n}=$$`, (n) => new RegExp(`pid-${n}=(\\d+)`)))[1]);

async function rejoined(sessionId: string): Promise<SessionView> {
  await expect.poll(async () => (await sessionView(t, sessionId))?.reconnecting, { timeout: 20_000, interval: 50 }).toBe(false);
  const view = (await sessionView(t, sessionId))!;
  expect(view.state).toBe('open');
  return view;
}

describe('a durable shell', () => {
  it('runs in tmux, with the shell as the root of its process tree', async () => {
    const s = await t.engine.openSession('web1', SHELL);
    expect(s.notDurable, s.notDurable ?? '').toBeNull();
    expect(s).toMatchObject({ durable: true, notDurable: null, reconnecting: false });
    const pid = await shellPid(s.id);
    expect((await sessionView(t, s.id))?.rootPid).toBe(pid);
    await expect
      .poll(async () => (await t.engine.processTree('web1')).processes.find((p) => p.pid === pid)?.sessionId, { timeout: 10_000 })
      .toBe(s.id);
    t.engine.closeSession(s.id);
  });

  it('keeps its shell and jobs through a network silent for 60 s, while the master keeps trying', async () => {
    const s = await t.engine.openSession('web1', SHELL);
    const pid = await shellPid(s.id);
    await ask(s.id, (n) => `(sleep 30; echo late-$((${n}+1))) & echo started-${n}`, (n) => new RegExp(`started-${n}`));
    const late = `late-${marks + 1000 + 1}`;
    proxy.blackhole(true);
    await expect.poll(async () => (await sessionView(t, s.id))?.reconnecting, { timeout: 10_000, interval: 20 }).toBe(true);
    await new Promise((r) => setTimeout(r, 60_000));
    expect((await sessionView(t, s.id))?.state).toBe('open'); // still waiting, never given up
    proxy.blackhole(false);
    proxy.resetAll();
    await rejoined(s.id);
    await t.waitForOutput(s.id, new RegExp(late), 10_000);
    expect(await shellPid(s.id)).toBe(pid);
    t.engine.closeSession(s.id);
  }, 120_000);

  for (const cut of ['reset', 'silence'] as const) {
    it(`keeps its shell and jobs through a ${cut === 'reset' ? 'reset connection' : 'silent network for 3 s'}, and shows what ran meanwhile`, async () => {
      const s = await t.engine.openSession('web1', SHELL);
      const pid = await shellPid(s.id);
      // A job that prints while the network is gone.
      await ask(s.id, (n) => `(sleep 1; echo during-$((${n}+1))) & echo started-${n}`, (n) => new RegExp(`started-${n}`));
      const during = `during-${marks + 1000 + 1}`;
      if (cut === 'reset') proxy.resetAll();
      else proxy.blackhole(true);
      await expect.poll(async () => (await sessionView(t, s.id))?.reconnecting, { timeout: 10_000, interval: 20 }).toBe(true);
      if (cut === 'silence') {
        await new Promise((r) => setTimeout(r, 3_000));
        proxy.blackhole(false);
        proxy.resetAll(); // the stale connection is gone for good; new ones flow
      }
      await rejoined(s.id);
      expect((await masterOf(t, proxy.port))?.state).toBe('ready');
      await t.waitForOutput(s.id, new RegExp(during), 10_000); // redrawn from what tmux kept
      expect(await shellPid(s.id)).toBe(pid); // the same shell answers
      t.engine.closeSession(s.id);
    }, 60_000);
  }

  it('runs the keys typed as the connection dropped once it is back: none lost, none run twice', async () => {
    const s = await t.engine.openSession('web1', SHELL);
    const pid = await shellPid(s.id);
    // The shell appends a line to this file each time a command runs (the test user can write /tmp).
    const ran = join(tmpdir(), `hitch-keys-${process.pid}-${Date.now()}`);
    const lines = async (): Promise<string[]> => (await readFile(ran, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    const reconnecting = async (): Promise<boolean | undefined> => (await sessionView(t, s.id))?.reconnecting;
    try {
      // Lost: the keys go into a silent network; keepalives give the connection up, then it is reset.
      proxy.blackhole(true);
      void t.engine.writeSession(s.id, `echo lost >> ${ran}\n`);
      await expect.poll(reconnecting, { timeout: 10_000, interval: 20 }).toBe(true);
      proxy.resetAll();
      proxy.blackhole(false);
      await rejoined(s.id);
      await expect.poll(lines, { timeout: 10_000 }).toEqual(['lost']);

      // Run, the answer lost: tmux gets the keys and runs them; its answers never come back.
      proxy.blackholeToClient(true);
      void t.engine.writeSession(s.id, `echo run >> ${ran}\n`);
      await expect.poll(lines, { timeout: 10_000 }).toEqual(['lost', 'run']);
      await expect.poll(reconnecting, { timeout: 10_000, interval: 20 }).toBe(true);
      proxy.resetAll();
      proxy.blackholeToClient(false);
      await rejoined(s.id);
      expect(await shellPid(s.id)).toBe(pid); // a round trip through the shell: all typed before has run
      expect(await lines()).toEqual(['lost', 'run']);

      // Stalled: the path dies under the connection while new ones get through. The keys sent
      // into it run once, over the next connection; the old one, given up on, never delivers
      // them late when its path comes back.
      const release = proxy.holdOpen();
      void t.engine.writeSession(s.id, `echo stalled >> ${ran}\n`);
      await expect.poll(reconnecting, { timeout: 10_000, interval: 20 }).toBe(true);
      await rejoined(s.id);
      await expect.poll(lines, { timeout: 10_000 }).toEqual(['lost', 'run', 'stalled']);
      release();
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await shellPid(s.id)).toBe(pid);
      expect(await lines()).toEqual(['lost', 'run', 'stalled']);
    } finally {
      await rm(ran, { force: true });
    }
    t.engine.closeSession(s.id);
  }, 60_000);

  it('keeps its shell through a restart of sshd on the host, trying again at once when told the network is back', async () => {
    const s = await t.engine.openSession('web1', SHELL);
    const pid = await shellPid(s.id);
    await sshd.kill(); // every sshd process, the connection's included
    await expect.poll(async () => (await sessionView(t, s.id))?.reconnecting, { timeout: 10_000, interval: 20 }).toBe(true);
    // Tries fail while sshd is down, each waiting longer: until the next is seconds away.
    let nextTry = 0;
    await expect
      .poll(async () => (nextTry = (await masterOf(t, proxy.port))?.reconnectAt ?? 0) - Date.now(), { timeout: 20_000, interval: 20 })
      .toBeGreaterThan(3_000);
    await sshd.start();
    await t.engine.probeMasters(); // a wake, or the network back: no waiting out the backoff
    await rejoined(s.id);
    expect(Date.now()).toBeLessThan(nextTry);
    expect(await shellPid(s.id)).toBe(pid);
    t.engine.closeSession(s.id);
  }, 60_000);

  it('stays running on the host through Disconnect, and Connect (even at once) rejoins it; one closed meanwhile ends there', async () => {
    const kept = await t.engine.openSession('web1', SHELL);
    const closed = await t.engine.openSession('web1', SHELL);
    const pid = await shellPid(kept.id);
    await shellPid(closed.id);
    const names = await tmuxSessions();
    await t.engine.disconnect('web1');
    expect((await masterOf(t, proxy.port))?.state).toBe('closed');
    await t.engine.connect('web1'); // before the old connection has finished closing
    await expect.poll(async () => (await masterOf(t, proxy.port))?.state).toBe('ready');
    await rejoined(kept.id);
    expect(await shellPid(kept.id)).toBe(pid);
    expect(await tmuxSessions()).toEqual(names);

    await t.engine.disconnect('web1');
    await expect.poll(async () => (await sessionView(t, closed.id))?.reconnecting).toBe(true);
    expect(await sessionView(t, kept.id)).toMatchObject({ state: 'open', reconnecting: true });
    t.engine.closeSession(closed.id);
    await new Promise((r) => setTimeout(r, 300));
    expect(await tmuxSessions()).toEqual(names); // nothing reaches the host while disconnected
    await t.engine.connect('web1');
    await expect.poll(async () => (await tmuxSessions()).length, { timeout: 10_000 }).toBe(names.length - 1);
    await rejoined(kept.id);
    t.engine.closeSession(kept.id);
  }, 60_000);

  it('keeps every shell when another is opened while they rejoin: Hitch never starts tmux work beside a starting control client', async () => {
    // tmux before 3.7 crashes, and every shell with it, when it tells a control client that
    // is still starting that a session was created or closed or a client detached. Connect
    // rejoins the shells while a new one starts: the work Hitch asks of tmux on a host goes
    // through one lane (TmuxLane). Over a link with 25 ms each way, as the race first showed.
    const own = await startSshd({ maxSessions: 20 });
    const slow = await startProxy({ targetPort: own.port, delayMs: 25 });
    const e = await testEngine(await behindProxy(own, slow, 'slow'), { durableShells: true, controlSocketDir: null });
    const serverPid = async (): Promise<string> => {
      const s = await e.engine.openSession('slow', { kind: 'exec', command: "tmux -L hitch display-message -p 'server-#{pid}'", pty: null });
      return (await e.waitForOutput(s.id, /server-(\d+)/))[1]!;
    };
    const shells: string[] = [];
    try {
      const first = await e.engine.openSession('slow', SHELL);
      await e.waitForOutput(first.id, /\$ $/);
      e.engine.closeSession(first.id);
      const server = await serverPid();
      for (let round = 0; round < 6; round++) {
        await e.engine.disconnect('slow');
        await new Promise((r) => setTimeout(r, 500));
        // Connecting for the new shell starts it beside the others' rejoins.
        const shell = await e.engine.openSession('slow', SHELL);
        shells.push(shell.id);
        await e.waitForOutput(shell.id, /\$ $/);
      }
      for (const id of shells) await expect.poll(async () => (await sessionView(e, id))?.reconnecting, { timeout: 20_000, interval: 50 }).toBe(false);
      expect(await serverPid()).toBe(server);
      for (const id of shells) {
        expect((await sessionView(e, id))?.state).toBe('open');
        await shellAnswers(e, id);
      }
    } finally {
      // Ended on the host before the engine goes, so none is left in the shared tmux server.
      for (const id of shells) e.engine.closeSession(id);
      for (const id of shells) await expect.poll(async () => (await sessionView(e, id))?.state ?? 'gone', { timeout: 10_000 }).not.toBe('open');
      await e.close();
      await slow.close();
      await own.stop();
    }
  }, 90_000);

  it('is back soon after a wake: a probe finds the dead connection at once instead of waiting for keepalives', async () => {
    // Keepalives too slow to notice anything within this test: only the probe can.
    const slow = await testEngine(config, { durableShells: true, timing: { ...TIMING, keepaliveIntervalMs: 60_000 } });
    try {
      const s = await slow.engine.openSession('web1', SHELL);
      await slow.engine.writeSession(s.id, 'echo pid-wake=$$\n');
      const pid = (await slow.waitForOutput(s.id, /pid-wake=(\d+)/))[1];
      // The network dies silently while the computer sleeps, just after the last bytes from
      // the host reached this computer: read after the probe began, they are no sign of life.
      const died = proxy.blackholeAfterNextToClient();
      // Not awaited: its write is answered by the very bytes that take the link down.
      const written = slow.engine.writeSession(s.id, 'echo last-words\n').catch(() => undefined);
      await died;
      const started = Date.now();
      const probed = await slow.engine.probeMasters(500);
      expect(probed).toEqual([{ masterId: expect.stringContaining(String(proxy.port)), answered: false }]);
      expect(Date.now() - started).toBeLessThan(3_000); // the deadline, not keepalive intervals
      await written;
      await expect.poll(async () => (await sessionView(slow, s.id))?.reconnecting, { timeout: 5_000, interval: 20 }).toBe(true);
      proxy.blackhole(false);
      proxy.resetAll();
      await expect.poll(async () => (await sessionView(slow, s.id))?.reconnecting, { timeout: 20_000, interval: 50 }).toBe(false);
      await slow.engine.writeSession(s.id, 'echo pid-woken=$$\n');
      await slow.waitForOutput(s.id, new RegExp(`pid-woken=${pid}`));
      slow.engine.closeSession(s.id);
    } finally {
      proxy.blackhole(false); // a failed step leaves the link down: closing needs it up
      await slow.close();
    }
  }, 60_000);

  it('lets a flood run at full speed while its viewer is behind, skips what it cannot show, and redraws from tmux once caught up', async () => {
    const s = await t.engine.openSession('direct', SHELL);
    await shellPid(s.id);
    const dir = await mkdtemp(join(tmpdir(), 'hitch-flood-'));
    await promisify(execFile)('chmod', ['1777', dir]);
    const done = join(dir, 'done');
    const dataEvents = (): { data: string; reset: boolean }[] =>
      t.events.flatMap((e) => (e.event === 'session.data' && e.payload.sessionId === s.id ? [{ data: String(e.payload.data), reset: e.payload.reset === true }] : []));
    try {
      // A viewer far behind (its terminal has not drawn what it was sent): the output waits for it.
      t.engine.holdOutput(s.id, 'slow-viewer', true);
      const sentBefore = dataEvents().length;
      await t.engine.writeSession(s.id, `seq 1 300000; echo flood-$((40+2)) > ${done}\n`);
      // The flood runs to its end on the host all the same: tmux keeps reading the pane.
      await expect.poll(() => readFile(done, 'utf8').catch(() => ''), { timeout: 20_000 }).toBe('flood-42\n');
      const held = dataEvents().slice(sentBefore);
      expect(held.map((d) => d.data).join('')).not.toContain('299999'); // nothing of it was sent on

      // Caught up: the terminal is redrawn from tmux, the flood's last lines in its scrollback.
      t.engine.holdOutput(s.id, 'slow-viewer', false);
      const flooded = (): number => t.engine.attachSession(s.id, 'test').data.split('\r\n').filter((l) => /^\d+$/.test(l)).length;
      await expect.poll(flooded, { timeout: 10_000 }).toBeGreaterThan(9_000);
      expect(dataEvents().slice(sentBefore).some((d) => d.reset)).toBe(true);
      expect(t.engine.attachSession(s.id, 'test').data).toMatch(/\r\n290001\r\n[^]*\r\n300000\r\n/);
      // And what it prints next flows as usual.
      await ask(s.id, (n) => `echo after-$((${n}+1))`, (n) => new RegExp(`after-${n + 1}`));
      expect(dataEvents().at(-1)?.reset).toBe(false);
    } finally {
      t.engine.closeSession(s.id);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ends its tmux session on the host when closed, and leaves it running when detached', async () => {
    const closed = await t.engine.openSession('web1', SHELL);
    const kept = await t.engine.openSession('web1', SHELL);
    await shellPid(closed.id);
    await shellPid(kept.id);
    const before = await tmuxSessions();
    expect(before.length).toBeGreaterThanOrEqual(2);
    t.engine.closeSession(closed.id);
    t.engine.closeSession(kept.id, true);
    await expect.poll(async () => (await tmuxSessions()).length, { timeout: 10_000 }).toBe(before.length - 1);
  });

  it('is listed under its host when Hitch starts again, and reopens into the same shell', async () => {
    const s = await t.engine.openSession('web1', SHELL);
    const pid = await shellPid(s.id);
    // Another engine with nothing in memory, as Hitch is after a restart (or a SIGKILL).
    const again = await testEngine(config, { durableShells: true, timing: TIMING });
    try {
      await again.engine.connect('web1');
      await expect.poll(async () => (await masterOf(again, proxy.port))?.leftRunning.map((l) => l.pid), { timeout: 10_000 }).toContain(pid);
      const left = (await masterOf(again, proxy.port))!.leftRunning.find((l) => l.pid === pid)!;
      const reopened = await again.engine.reopenDurable('web1', left.name, { cols: 80, rows: 24 }, null);
      expect(reopened).toMatchObject({ durable: true, rootPid: pid, state: 'open' });
      await again.engine.writeSession(reopened.id, 'echo pid-again=$$\n');
      await again.waitForOutput(reopened.id, new RegExp(`pid-again=${pid}`));
      await expect.poll(async () => (await masterOf(again, proxy.port))?.leftRunning.some((l) => l.pid === pid)).toBe(false);
      again.engine.closeSession(reopened.id); // ends the shell on the host
      await expect.poll(async () => (await sessionView(t, s.id))?.state, { timeout: 10_000 }).toBe('closed');
    } finally {
      await again.close();
    }
  });

  it('is listed by `hitch sessions HOST --json`, with a shell left running on the host as detached', async () => {
    await withEngineSocket(async (runtimeDir) => {
      const open = await t.engine.openSession('web1', SHELL);
      const left = await t.engine.openSession('web1', SHELL);
      const leftPid = await shellPid(left.id);
      await shellPid(open.id);
      t.engine.closeSession(left.id, true); // detached: it runs on without a tab
      await t.engine.disconnect('web1');
      await expect.poll(async () => (await masterOf(t, proxy.port))?.state).toBe('closed');
      await t.engine.connect('web1'); // listed again on connecting
      await expect.poll(async () => (await masterOf(t, proxy.port))?.leftRunning.some((l) => l.pid === leftPid), { timeout: 10_000 }).toBe(true);
      await rejoined(open.id);
      const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'sessions', 'web1', '--json'], { env: { ...process.env, HITCH_RUNTIME_DIR: runtimeDir } });
      // (the `hitch` process reaches this test's engine through its socket)
      const listed = sessionsOutputSchema.parse(JSON.parse(stdout));
      expect(listed.host).toBe('web1');
      expect(listed.sessions).toContainEqual({ id: open.id, kind: 'shell', durable: true, state: 'open', rootPid: expect.any(Number), command: null });
      expect(listed.sessions).toContainEqual({ id: expect.stringMatching(/^hitch-[0-9a-f]{16}$/), kind: 'shell', durable: true, state: 'detached', rootPid: leftPid, command: null });
      t.engine.closeSession(open.id);
    });
  }, 60_000);

  it('is what `hitch shell HOST` gives on a terminal: it says "reconnecting…" when the network drops, and carries on', async () => {
    await withEngineSocket(async (runtimeDir) => {
      const shell = shellOnTerminal('web1', runtimeDir);
      try {
        await new Promise((r) => setTimeout(r, 500)); // the shell starting
        shell.type('echo pid-shell=$$\n');
        const pid = (await shell.seen(/pid-shell=(\d+)/))[1];
        proxy.resetAll();
        await shell.seen(/reconnecting…/);
        const session = (await t.engine.snapshot()).sessions.find((s) => s.rootPid === Number(pid))!;
        await rejoined(session.id);
        shell.type('echo pid-after=$$\n');
        await shell.seen(new RegExp(`pid-after=${pid}`)); // the same shell
        shell.type('exit\n');
        // hitch ends with the shell (tmux does not tell a durable shell's exit status: 0).
        expect(await shell.exited).toBe(0);
      } finally {
        shell.kill();
      }
    });
  }, 60_000);

  it('is an ordinary shell, saying why, when durable shells are off for the host', async () => {
    await t.engine.updateSettings({ notDurableHosts: ['web1'] });
    try {
      const s = await t.engine.openSession('web1', SHELL);
      expect(s).toMatchObject({ durable: false, notDurable: 'durable shells are turned off for web1' });
      t.engine.closeSession(s.id);
    } finally {
      await t.engine.updateSettings({ notDurableHosts: [] });
    }
  });
});

async function pidOf(client: HitchClient, sessionId: string, tag: string): Promise<number> {
  let out = '';
  const off = client.on('session.data', (p) => {
    if (p.sessionId === sessionId) out += p.data;
  });
  try {
    await client.call('session.write', { sessionId, data: `echo ${tag}=$$\n` });
    await expect.poll(() => new RegExp(`${tag}=(\\d+)`).exec(out), { timeout: 10_000, interval: 50 }).toBeTruthy();
    return Number(new RegExp(`${tag}=(\\d+)`).exec(out)![1]);
  } finally {
    off();
  }
}

const view = async (client: HitchClient, id: string): Promise<SessionView | undefined> => ((await client.call('state.get', {})) as Snapshot).sessions.find((s) => s.id === id);

// The engine process itself, run as `hitch daemon`: stopped (SIGSTOP, as a sleeping laptop
// stops everything) while the network dies, it notices on waking and finds the dead
// connection at once instead of after three keepalive intervals; killed outright (SIGKILL)
// and started again, it finds the shell it left on the host and reopens it. (In this file:
// tests that use the test user's tmux server must not run beside each other.)
describe('a durable shell and the engine process', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hitch-durable-daemon-'));
    await writeFile(join(dir, 'ssh_config'), await behindProxy(sshd, proxy, 'web1'));
    env = hitchEnv(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** `hitch daemon` with the default keepalives (every 15 s, three missed: 45 s to notice a dead network). */
  async function startDaemon(): Promise<{ process: ChildProcess; client: HitchClient; close(): void }> {
    const child = spawn(process.execPath, [...ENGINE_NODE_FLAGS, CLI, 'daemon', '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((ok, fail) => {
      child.stdout!.once('data', () => ok());
      child.once('exit', (code) => fail(new Error(`hitch daemon exited with ${code}`)));
    });
    const connection = await connectEngineSocket(join(dir, 'run', 'engine.sock'));
    return { process: child, client: new HitchClient(connection), close: () => connection.close() };
  }

  // Asleep for 6 s in the suite; HITCH_SLEEP_MS=120000 sleeps the two minutes.
  const SLEEP_MS = Number(process.env.HITCH_SLEEP_MS ?? 6_000);

  it('after the engine was stopped while the network died: found dead on waking, rejoined; after SIGKILL: reopened by the next engine', async () => {
    let daemon = await startDaemon();
    try {
      const shell = await daemon.client.call('session.open', { hostId: 'web1', cols: 80, rows: 24 });
      expect(shell.durable).toBe(true);
      const pid = await pidOf(daemon.client, shell.id, 'pid-start');

      // Asleep: the engine stopped, and the network gone silently meanwhile.
      proxy.blackhole(true);
      daemon.process.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, SLEEP_MS));
      daemon.process.kill('SIGCONT');
      const woke = Date.now();
      // The default keepalives would take 45 s; the probe on waking takes its deadline (3 s).
      await expect.poll(async () => (await view(daemon.client, shell.id))?.reconnecting, { timeout: 10_000, interval: 50 }).toBe(true);
      expect(Date.now() - woke).toBeLessThan(10_000);
      proxy.blackhole(false);
      proxy.resetAll();
      await expect.poll(async () => (await view(daemon.client, shell.id))?.reconnecting, { timeout: 30_000, interval: 50 }).toBe(false);
      expect(await pidOf(daemon.client, shell.id, 'pid-woken')).toBe(pid);

      // Killed outright: the next engine finds the shell on the host and reopens it. (Killed
      // first: a client that said goodbye first would have its shells ended, as it should.)
      daemon.process.kill('SIGKILL');
      await new Promise((r) => daemon.process.once('exit', r));
      daemon.close();
      daemon = await startDaemon();
      await daemon.client.call('master.connect', { hostId: 'web1' });
      let left: { name: string; pid: number } | undefined;
      await expect
        .poll(async () => {
          const state = (await daemon.client.call('state.get', {})) as Snapshot;
          left = state.masters[0]?.leftRunning.find((l) => l.pid === pid);
          return left !== undefined;
        }, { timeout: 10_000 })
        .toBe(true);
      const reopened = await daemon.client.call('session.reopen', { hostId: 'web1', name: left!.name, cols: 80, rows: 24 });
      expect(await pidOf(daemon.client, reopened.id, 'pid-reopened')).toBe(pid);
      await daemon.client.call('session.close', { sessionId: reopened.id });
    } finally {
      daemon.close();
      daemon.process.kill('SIGTERM');
    }
  }, 120_000 + SLEEP_MS);
});

describe('durable shells on a host whose login needs a person (a key and a one-time code)', () => {
  let otpSshd: Sshd;
  let otpProxy: TcpProxy;
  let o: TestEngine;
  const typed = (text: string) => ({ answers: [text], remember: false, choice: null });
  const logins = async (pattern: RegExp): Promise<number> => (await readFile(otpSshd.logFile, 'utf8')).split('\n').filter((l) => pattern.test(l)).length;
  const promptsOpened = (): number => o.events.filter((e) => e.event === 'prompt.opened').length;

  beforeAll(async () => {
    otpSshd = await startSshd({ extraConfig: ['UsePAM yes', 'KbdInteractiveAuthentication yes', 'AuthenticationMethods publickey,keyboard-interactive'] });
    otpProxy = await startProxy({ targetPort: otpSshd.port });
    o = await testEngine(await behindProxy(otpSshd, otpProxy, 'otp'), { durableShells: true, timing: TIMING });
  }, 30_000);
  afterAll(async () => {
    await o?.close();
    await otpProxy?.close();
    await otpSshd?.stop();
  });

  /** Connects as a person would: the one question, answered; `done` settles with the login. */
  async function logIn(answer: string): Promise<{ done: Promise<unknown> }> {
    const done = o.engine.connect('otp');
    done.catch(() => undefined);
    o.engine.answerPrompt((await o.nextPrompt('keyboard-interactive')).id, typed(answer));
    return { done };
  }

  it('waits for the person after a drop, asks once for all its shells, and never logs in in the background', async () => {
    await (await logIn(TEST_PASSWORD)).done;
    const shells = [await o.engine.openSession('otp', SHELL), await o.engine.openSession('otp', SHELL)];
    const pids: number[] = [];
    for (const s of shells) {
      await o.engine.writeSession(s.id, `echo otp-pid=$$\n`);
      pids.push(Number((await o.waitForOutput(s.id, /otp-pid=(\d+)/))[1]));
    }
    const attempts = await logins(/Connection from|Partial publickey/);
    const prompts = promptsOpened();

    otpProxy.resetAll();
    const master = async () => (await o.engine.snapshot()).masters.find((m) => m.id.endsWith(`:${otpProxy.port}`));
    await expect.poll(async () => (await master())?.state, { timeout: 10_000 }).toBe('failed');
    expect((await master())?.error?.message).toMatch(/Logging in again needs you: use Connect\./);
    // Nobody is asked, and nothing tries to log in, while nobody asked for it.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(promptsOpened()).toBe(prompts);
    expect(await logins(/Connection from|Partial publickey/)).toBe(attempts);
    for (const s of shells) expect(await sessionView(o, s.id)).toMatchObject({ state: 'open', reconnecting: true });

    // A wrong code, and the person gives up when asked again: the login fails, and is not
    // tried again by itself.
    const wrong = await logIn('not-the-code');
    const again = await o.nextPrompt('keyboard-interactive');
    o.engine.cancelPrompt(again.id);
    await expect(wrong.done).rejects.toThrow();
    expect((await master())?.state).toBe('failed');
    const [afterPrompts, afterAttempts] = [promptsOpened(), await logins(/Connection from|Partial publickey/)];
    await new Promise((r) => setTimeout(r, 3_000));
    expect(promptsOpened()).toBe(afterPrompts);
    expect(await logins(/Connection from|Partial publickey/)).toBe(afterAttempts);
    for (const s of shells) expect((await sessionView(o, s.id))?.state).toBe('open');

    // The person connects: one question for the host, and every shell is back, the same one.
    const before = promptsOpened();
    await (await logIn(TEST_PASSWORD)).done;
    expect(promptsOpened() - before).toBe(1);
    for (const [i, s] of shells.entries()) {
      await expect.poll(async () => (await sessionView(o, s.id))?.reconnecting, { timeout: 20_000, interval: 50 }).toBe(false);
      await o.engine.writeSession(s.id, `echo otp-again-${i}=$$\n`);
      expect(Number((await o.waitForOutput(s.id, new RegExp(`otp-again-${i}=(\\d+)`)))[1])).toBe(pids[i]);
      o.engine.closeSession(s.id);
    }
  }, 90_000);

  it('lets `hitch shell` log in again on its own terminal when the network comes back: one question, the same shell', async () => {
    if ((await o.engine.snapshot()).masters[0]?.state !== 'ready') await (await logIn(TEST_PASSWORD)).done;
    await withEngineSocket(async (runtimeDir) => {
      let questions = 0;
      const shell = shellOnTerminal('otp', runtimeDir, (out) => {
        if (/Password: $/.test(out)) {
          questions++;
          return `${TEST_PASSWORD}\r`;
        }
        return /Remember in the OS keychain\? \[y\/N\]: $/.test(out) ? 'n\r' : null;
      });
      try {
        await new Promise((r) => setTimeout(r, 500)); // the shell starting
        shell.type('echo pid-otp=$$\n');
        const pid = (await shell.seen(/pid-otp=(\d+)/))[1];
        otpProxy.resetAll();
        await shell.seen(/reconnecting…/);
        await shell.seen(/Logging in again needs you: use Connect\.\s+hitch: the shell keeps running on otp; press Enter to log in again\./);
        expect(questions).toBe(0);
        shell.type('\r');
        await shell.seen(/logged in; rejoining the shell…/);
        expect(questions).toBe(1);
        await new Promise((r) => setTimeout(r, 500)); // the shell rejoined
        shell.type('echo pid-otp-after=$$\n');
        await shell.seen(new RegExp(`pid-otp-after=${pid}`)); // the same shell
        shell.type('exit\n');
        expect(await shell.exited).toBe(0);
      } finally {
        shell.kill();
      }
    }, o.engine);
  }, 60_000);
});

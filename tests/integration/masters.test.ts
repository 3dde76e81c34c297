// What a master does over its life: it carries many sessions past the server's MaxSessions,
// closes when idle, notices a network that went silent and recovers on its own, gives up on a
// server that never answers, keeps other hosts unaffected, and hangs up remote processes when
// a session is closed.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionView } from '../../preload/api';
import { startSshd, TEST_PASSWORD, type Sshd } from '../fixtures/sshd';
import { masterOf, sessionView, shellAnswers, type TestEngine, testEngine } from '../fixtures/engine';
import { failure } from '../fixtures/failure';
import { startProxy } from '../fixtures/tcp-proxy';

const run = promisify(execFile);
const SHELL = { kind: 'shell', cols: 80, rows: 24 } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The login's parent sshd process: one per SSH connection. */
async function sshdOf(t: TestEngine, sessionId: string): Promise<string> {
  t.engine.writeSession(sessionId, 'echo ppid-$PPID-end\n');
  return (await t.waitForOutput(sessionId, /ppid-(\d+)-end/))[1]!;
}

/** Processes of `user` whose whole command line is exactly `command`. */
async function processes(user: string, command: string): Promise<number> {
  const { stdout } = await run('pgrep', ['-u', user, '-f', `^${command}$`]).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter(Boolean).length;
}


describe('a server that allows few sessions per connection (MaxSessions)', () => {
  it('carries seven shells on three connections when logging in needs nobody', async () => {
    const sshd = await startSshd({ maxSessions: 3 });
    // Without process trees: their monitor channel would take a slot on each connection.
    const t = await testEngine(sshd.clientConfig('small'), { processTrees: false });
    try {
      const sessions: SessionView[] = [];
      for (let i = 0; i < 7; i++) sessions.push(await t.engine.openSession('small', SHELL));
      const parents: string[] = [];
      for (const s of sessions) parents.push(await sshdOf(t, s.id));

      // Each connection is filled before another is opened: 3 + 3 + 1.
      expect(new Set(parents).size).toBe(3);
      expect(new Set(parents.slice(0, 3)).size).toBe(1);
      expect(new Set(parents.slice(3, 6)).size).toBe(1);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', sessionLimit: 3, connections: 3, sessions: 7 });
      expect(await sshd.acceptedLogins()).toBe(3);

      // The seventh shell is alone on the third connection: closing it closes that connection.
      t.engine.closeSession(sessions[6]!.id);
      await expect.poll(async () => (await masterOf(t, sshd.port))?.connections, { timeout: 5_000 }).toBe(2);
      for (const s of sessions.slice(3, 6)) t.engine.closeSession(s.id);
      await expect.poll(async () => (await masterOf(t, sshd.port))?.connections, { timeout: 5_000 }).toBe(1);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', sessions: 3 });
      for (const s of sessions.slice(0, 3)) await shellAnswers(t, s.id);
      expect(await sshd.acceptedLogins()).toBe(3);
    } finally {
      await t.close();
      await sshd.stop();
    }
  });

  it('needs no more connections when the shells are opened all at once, as when restoring tabs', async () => {
    const sshd = await startSshd({ maxSessions: 3 });
    const t = await testEngine(sshd.clientConfig('burst'), { processTrees: false });
    try {
      const sessions = await Promise.all(Array.from({ length: 7 }, () => t.engine.openSession('burst', SHELL)));
      const parents = await Promise.all(sessions.map((s) => sshdOf(t, s.id)));
      expect(new Set(parents).size).toBe(3);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', sessionLimit: 3, connections: 3, sessions: 7 });
      expect(await sshd.acceptedLogins()).toBe(3);

      // Once the limit is known, a later shell goes where there is room, without a new login.
      t.engine.closeSession(sessions[0]!.id);
      await expect.poll(async () => (await masterOf(t, sshd.port))?.sessions).toBe(6);
      const later = await t.engine.openSession('burst', SHELL);
      await shellAnswers(t, later.id);
      expect(await sshd.acceptedLogins()).toBe(3);
    } finally {
      await t.close();
      await sshd.stop();
    }
  });

  it('closes an extra connection once its shells are closed, even while their processes are watched', async () => {
    const sshd = await startSshd({ maxSessions: 3 });
    const t = await testEngine(sshd.clientConfig('watched')); // a process monitor channel per connection
    const rootOf = async (id: string): Promise<number | null> => (await sessionView(t, id))?.rootPid ?? null;
    try {
      // One at a time, the first two until their processes are seen: the monitor then has its slot.
      const sessions: SessionView[] = [];
      for (let i = 0; i < 4; i++) {
        const s = await t.engine.openSession('watched', SHELL);
        if (i < 2) await expect.poll(() => rootOf(s.id), { timeout: 5_000 }).toBeTypeOf('number');
        sessions.push(s);
      }
      // The monitor gives its slot to the third shell; the fourth needs a second connection,
      // whose monitor then sees the first connection's shells too.
      const parents: string[] = [];
      for (const s of sessions) parents.push(await sshdOf(t, s.id));
      expect(new Set(parents.slice(0, 3)).size).toBe(1);
      expect(parents[3]).not.toBe(parents[0]);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', sessionLimit: 3, connections: 2, sessions: 4 });
      for (const s of sessions) await expect.poll(() => rootOf(s.id), { timeout: 5_000 }).toBeTypeOf('number');

      t.engine.closeSession(sessions[3]!.id);
      await expect.poll(async () => (await masterOf(t, sshd.port))?.connections, { timeout: 5_000 }).toBe(1);
      await shellAnswers(t, sessions[0]!.id);
      await shellAnswers(t, sessions[2]!.id);
      // A closed shell frees a slot on the first connection: its own monitor comes back.
      t.engine.closeSession(sessions[2]!.id);
      t.engine.writeSession(sessions[1]!.id, 'sleep 603\n');
      await expect
        .poll(async () => (await t.engine.processTree('watched')).processes.find((p) => p.command === 'sleep 603')?.sessionId, { timeout: 5_000 })
        .toBe(sessions[1]!.id);
      expect(await sshd.acceptedLogins()).toBe(2);
    } finally {
      await t.close();
      await sshd.stop();
    }
  });

  describe('when logging in needs a person (password only, MaxSessions 1)', () => {
    let sshd: Sshd;
    let t: TestEngine;

    beforeAll(async () => {
      sshd = await startSshd({ maxSessions: 1, extraConfig: ['PasswordAuthentication yes', 'PubkeyAuthentication no'] });
      t = await testEngine(sshd.clientConfig('pw'));
    });
    afterAll(async () => {
      await t?.close();
      await sshd?.stop();
    });

    async function typePassword(): Promise<void> {
      const prompt = await t.nextPrompt('password');
      t.engine.answerPrompt(prompt.id, { answers: [TEST_PASSWORD], remember: false, choice: null });
    }

    it('asks before opening another connection, then asks for the password again', async () => {
      const opening = t.engine.openSession('pw', SHELL);
      await typePassword();
      const first = await opening;

      const second = t.engine.openSession('pw', SHELL);
      const ask = await t.nextPrompt('extra-connection');
      expect(ask.message).toMatch(/allows 1 session/);
      t.engine.answerPrompt(ask.id, { answers: [], remember: false, choice: 'once' });
      await typePassword();
      const other = await second;

      expect(await sshdOf(t, first.id)).not.toBe(await sshdOf(t, other.id));
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', sessionLimit: 1, connections: 2, sessions: 2, needsPerson: true });
      expect(await sshd.acceptedLogins()).toBe(2);
    });

    it('refuses the session, naming the limit, when the person declines another connection', async () => {
      const third = failure(t.engine.openSession('pw', SHELL));
      t.engine.cancelPrompt((await t.nextPrompt('extra-connection')).id);
      const err = await third;
      expect(err.code).toBe('max-sessions');
      expect(err.message).toMatch(/allows 1 session.* per connection \(MaxSessions\)/);
      expect((await t.engine.snapshot()).prompts).toEqual([]); // no password asked for nothing
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 2, sessions: 2 });
      expect(await sshd.acceptedLogins()).toBe(2);
    });
  });
});

describe('a master over its life', () => {
  let sshd: Sshd;

  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it("counts only the person's sessions, also while Hitch's own channels are still opening", async () => {
    // On connect Hitch lists the host's durable shells over a channel of its own, and opens the
    // next session's channel ahead: neither is a session of the person's at any moment.
    const t = await testEngine(sshd.clientConfig('counted'), { durableShells: true });
    try {
      for (let round = 0; round < 3; round++) {
        const seen = new Set<number | undefined>();
        let connecting = true;
        const sampling = (async () => {
          while (connecting) {
            seen.add((await masterOf(t, sshd.port))?.sessions);
            await new Promise((r) => setImmediate(r));
          }
        })();
        await t.engine.connect('counted');
        seen.add((await masterOf(t, sshd.port))?.sessions);
        await sleep(300); // the listing and the spare channel are done by then
        connecting = false;
        await sampling;
        seen.delete(undefined); // before the master exists
        expect([...seen]).toEqual([0]);
        await t.engine.disconnect('counted');
      }
    } finally {
      await t.close();
    }
  });

  describe('idle timeout', () => {
    it('closes the master soon after the last session closes, and logs in again for the next one', async () => {
      const t = await testEngine(sshd.clientConfig('idle'), { idleTimeoutMs: 300 });
      try {
        const logins = await sshd.acceptedLogins();
        const s = await t.engine.openSession('idle', SHELL);
        await shellAnswers(t, s.id);
        const closedAt = Date.now();
        t.engine.closeSession(s.id);
        await expect.poll(async () => (await masterOf(t, sshd.port))?.state, { timeout: 2_000, interval: 20 }).toBe('closed');
        const waited = Date.now() - closedAt;
        expect(waited).toBeGreaterThanOrEqual(250);
        expect(waited).toBeLessThan(1_000);

        const again = await t.engine.openSession('idle', SHELL);
        await shellAnswers(t, again.id);
        expect(await sshd.acceptedLogins()).toBe(logins + 2);
      } finally {
        await t.close();
      }
    });

    it('keeps the master up without sessions when there is no idle timeout', async () => {
      const t = await testEngine(sshd.clientConfig('persist'), { idleTimeoutMs: null });
      try {
        const s = await t.engine.openSession('persist', SHELL);
        t.engine.closeSession(s.id);
        await expect.poll(async () => (await masterOf(t, sshd.port))?.sessions).toBe(0);
        const states = new Set<string | undefined>();
        for (const end = Date.now() + 1_000; Date.now() < end; await sleep(100)) states.add((await masterOf(t, sshd.port))?.state);
        expect([...states]).toEqual(['ready']);
      } finally {
        await t.close();
      }
    });
  });

  it('notices a network that silently drops everything, and recovers on its own when it is back', async () => {
    const proxy = await startProxy({ targetPort: sshd.port });
    // The proxied address is a host of its own to known_hosts: [127.0.0.1]:proxyPort.
    const knownHosts = join(sshd.dir, 'known_hosts_proxy');
    await writeFile(knownHosts, `[127.0.0.1]:${proxy.port} ${sshd.knownHostsLine.split(' ').slice(1).join(' ')}\n`);
    const config =
      sshd.clientConfig('flaky').replace(`Port ${sshd.port}`, `Port ${proxy.port}`).replace(sshd.knownHosts, knownHosts) + sshd.clientConfig('steady');
    const t = await testEngine(config, { timing: { keepaliveIntervalMs: 200, keepaliveCountMax: 2, connectTimeoutMs: 2000 } });
    try {
      const logins = await sshd.acceptedLogins();
      const flaky = await t.engine.openSession('flaky', SHELL);
      const steady = await t.engine.openSession('steady', SHELL);
      await shellAnswers(t, flaky.id);
      await shellAnswers(t, steady.id);

      proxy.blackhole(true);
      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 5_000, interval: 20 }).not.toBe('ready');
      const dropped = await masterOf(t, proxy.port);
      expect(dropped).toMatchObject({ state: 'reconnecting', error: { code: 'timeout' } });
      expect(dropped?.error?.message).toMatch(/flaky stopped answering keepalives/);
      expect((await sessionView(t, flaky.id))?.state).toBe('disconnected');
      await shellAnswers(t, steady.id);

      // A reconnect attempt goes out into the dead network (the dead connection is still held).
      await expect.poll(() => proxy.connections, { timeout: 5_000, interval: 20 }).toBe(2);
      await shellAnswers(t, steady.id);
      proxy.blackhole(false);

      await expect.poll(async () => (await masterOf(t, proxy.port))?.state, { timeout: 10_000, interval: 50 }).toBe('ready');
      const again = await t.engine.openSession('flaky', SHELL);
      await shellAnswers(t, again.id);
      await shellAnswers(t, steady.id);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 1 });
      expect(await sshd.acceptedLogins()).toBe(logins + 3); // steady once, flaky twice
    } finally {
      await t.close();
      await proxy.close();
    }
  });

  it('gives up on a server that accepts but never speaks SSH after ConnectTimeout', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((sock) => {
      sockets.add(sock);
      sock.resume(); // reads (and ignores) what the client says, so its hang-up is seen
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const t = await testEngine(sshd.clientConfig('silent', ['ConnectTimeout 1']).replace(`Port ${sshd.port}`, `Port ${port}`));
    try {
      await t.engine.snapshot(); // the config is read before the clock starts
      const started = Date.now();
      const err = await failure(t.engine.connect('silent'));
      const took = Date.now() - started;
      expect(err.code).toBe('timeout');
      expect(err.message).toMatch(new RegExp(`127\\.0\\.0\\.1 port ${port} did not complete the SSH handshake`));
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(2_000);
      expect(await masterOf(t, port)).toMatchObject({ state: 'failed', error: { code: 'timeout' } });
      await expect.poll(() => sockets.size).toBe(0); // the attempt's socket is not left behind
    } finally {
      await t.close();
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('keeps another host working when one host’s server is killed mid-session', async () => {
    const victim = await startSshd();
    const t = await testEngine(sshd.clientConfig('calm') + victim.clientConfig('victim'));
    try {
      const calm = await t.engine.openSession('calm', SHELL);
      const doomed = await t.engine.openSession('victim', SHELL);
      await shellAnswers(t, calm.id);
      await shellAnswers(t, doomed.id);

      await victim.kill();
      await expect.poll(async () => (await masterOf(t, victim.port))?.state, { timeout: 5_000 }).toBe('reconnecting');
      expect((await sessionView(t, doomed.id))?.state).toBe('disconnected');
      await shellAnswers(t, calm.id);
      const more = await t.engine.openSession('calm', SHELL);
      await shellAnswers(t, more.id);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', sessions: 2 });
    } finally {
      await t.close();
      await victim.stop();
    }
  });

  describe('sessions and their remote processes', () => {
    let t: TestEngine;

    beforeAll(async () => {
      t = await testEngine(sshd.clientConfig('procs'));
    });
    afterAll(async () => {
      await t?.close();
    });

    async function ended(id: string): Promise<SessionView | undefined> {
      await expect.poll(async () => (await sessionView(t, id))?.state, { timeout: 5_000 }).toBe('closed');
      return sessionView(t, id);
    }

    it('runs a command and reports its output and exit code', async () => {
      const s = await t.engine.openSession('procs', { kind: 'exec', command: 'echo out; echo err >&2; exit 3', pty: null });
      expect(await ended(s.id)).toMatchObject({ kind: 'exec', exitCode: 3, exitSignal: null });
      const { data } = t.engine.attachSession(s.id, 'test');
      expect(data).toContain('out\n');
      expect(data).toContain('err\n');
    });

    it('reports the signal that killed a command', async () => {
      const s = await t.engine.openSession('procs', { kind: 'exec', command: 'kill -TERM $$', pty: null });
      expect(await ended(s.id)).toMatchObject({ exitCode: null, exitSignal: 'TERM' });
    });

    it('closing a command without a terminal stops it on the server', async () => {
      const s = await t.engine.openSession('procs', { kind: 'exec', command: 'sleep 300', pty: null });
      await expect.poll(() => processes(sshd.user, 'sleep 300'), { timeout: 5_000 }).toBe(1);
      t.engine.closeSession(s.id);
      await expect.poll(() => processes(sshd.user, 'sleep 300'), { timeout: 5_000 }).toBe(0);
      await expect.poll(() => t.events.some((e) => e.event === 'session.removed' && e.payload.sessionId === s.id)).toBe(true);
    });

    it('closing a shell tab hangs up the processes running in it', async () => {
      const s = await t.engine.openSession('procs', SHELL);
      t.engine.writeSession(s.id, 'sleep 301\n');
      await expect.poll(() => processes(sshd.user, 'sleep 301'), { timeout: 5_000 }).toBe(1);
      t.engine.closeSession(s.id);
      await expect.poll(() => processes(sshd.user, 'sleep 301'), { timeout: 5_000 }).toBe(0);
    });
  });
});

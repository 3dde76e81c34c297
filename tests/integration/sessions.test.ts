// A user connects a host and opens shells: every shell after the first rides the one
// authenticated connection, as OpenSSH's ControlMaster sessions do.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';

describe('shell sessions on one master', () => {
  let sshd: Sshd;
  let t: TestEngine;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await testEngine(sshd.clientConfig('testhost'));
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('opens two shells with one authentication, both children of one sshd process', async () => {
    const a = await t.engine.openSession('testhost', { kind: 'shell', cols: 80, rows: 24 });
    const b = await t.engine.openSession('testhost', { kind: 'shell', cols: 80, rows: 24 });
    expect(a.id).not.toBe(b.id);

    t.engine.writeSession(a.id, 'echo "PPID=$PPID USER=$(id -un)"\n');
    t.engine.writeSession(b.id, 'echo "PPID=$PPID USER=$(id -un)"\n');
    const [, ppidA, userA] = await t.waitForOutput(a.id, /PPID=(\d+) USER=(\S+)/);
    const [, ppidB] = await t.waitForOutput(b.id, /PPID=(\d+) USER=(\S+)/);

    expect(userA).toBe(sshd.user);
    expect(ppidA).toBe(ppidB);
    expect(await sshd.acceptedLogins()).toBe(1);

    const master = (await t.engine.snapshot()).masters.find((m) => m.id.endsWith(`:${sshd.port}`));
    expect(master).toMatchObject({ state: 'ready', sessions: 2, authMethod: 'publickey' });
    expect(master?.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('closing one shell leaves the other working', async () => {
    const a = await t.engine.openSession('testhost', { kind: 'shell', cols: 80, rows: 24 });
    const b = await t.engine.openSession('testhost', { kind: 'shell', cols: 80, rows: 24 });
    t.engine.closeSession(a.id);
    await expect.poll(() => t.events.some((e) => e.event === 'session.removed' && e.payload.sessionId === a.id)).toBe(true);

    t.engine.writeSession(b.id, 'echo still-$((40+2))\n');
    await t.waitForOutput(b.id, /still-42/);
    expect(await sshd.acceptedLogins()).toBe(1);
  });

  it('forwards terminal resizes to the pty', async () => {
    const s = await t.engine.openSession('testhost', { kind: 'shell', cols: 80, rows: 24 });
    t.engine.resizeSession(s.id, 132, 43);
    // Give the window-change request a moment to reach sshd before asking the pty.
    await new Promise((r) => setTimeout(r, 100));
    t.engine.writeSession(s.id, 'echo "SIZE=$(stty size)"\n');
    await t.waitForOutput(s.id, /SIZE=43 132/);
  });

  it('replays the scrollback so a reloaded window can reattach', async () => {
    const s = await t.engine.openSession('testhost', { kind: 'shell', cols: 80, rows: 24 });
    t.engine.writeSession(s.id, 'echo marker-$((6*7))\n');
    await t.waitForOutput(s.id, /marker-42/);
    const replay = t.engine.attachSession(s.id, 'test');
    expect(replay.data).toContain('marker-42');
    expect(replay.end).toBe(replay.data.length);
  });
});

describe("a master's details", () => {
  it('reports bytes both ways and the latency of its keepalives', async () => {
    const sshd = await startSshd();
    const t = await testEngine(sshd.clientConfig('detail'), { timing: { keepaliveIntervalMs: 100 } });
    try {
      const s = await t.engine.openSession('detail', { kind: 'shell', cols: 80, rows: 24 });
      t.engine.writeSession(s.id, 'head -c 50000 /dev/zero | base64 | wc -c\n');
      await t.waitForOutput(s.id, /67546/);
      await expect.poll(async () => (await t.engine.snapshot()).masters[0]?.latencyMs ?? null).not.toBeNull();
      const m = (await t.engine.snapshot()).masters[0]!;
      expect(m.latencyMs).toBeGreaterThan(0);
      expect(m.latencyMs).toBeLessThan(1000);
      expect(m.bytesIn).toBeGreaterThan(2000);
      expect(m.bytesOut).toBeGreaterThan(1000);
    } finally {
      await t.close();
      await sshd.stop();
    }
  });
});

// Ten shells on a server with sshd's default MaxSessions (10): the channel Hitch opens ahead of
// need never costs a person one of them. The tenth shell opens on the same connection, one at a
// time or all at once, and only an eleventh needs another login. The process monitor is a
// channel too: with process trees on, it takes one of the ten.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionView } from '../../preload/api';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { masterOf, sessionView, type TestEngine, testEngine } from '../fixtures/engine';

const SHELL = { kind: 'shell', cols: 80, rows: 24 } as const;

/** The sshd process serving the session's connection (its shell's parent). */
async function sshdOf(t: TestEngine, sessionId: string): Promise<string> {
  t.engine.writeSession(sessionId, 'echo ppid-$PPID-end\n');
  return (await t.waitForOutput(sessionId, /ppid-(\d+)-end/))[1]!;
}

describe('a server with the default MaxSessions (10)', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd({ maxSessions: 10 });
  });
  afterAll(async () => {
    await sshd.stop();
  });

  it('carries ten shells opened one after another on one connection, and the eleventh on a second', async () => {
    const t = await testEngine(sshd.clientConfig('ten'), { processTrees: false });
    const loginsBefore = await sshd.acceptedLogins();
    try {
      const sessions: SessionView[] = [];
      for (let i = 0; i < 10; i++) sessions.push(await t.engine.openSession('ten', SHELL));
      const parents = await Promise.all(sessions.map((s) => sshdOf(t, s.id)));
      expect(new Set(parents).size).toBe(1);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 1, sessions: 10 });
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(1);

      const eleventh = await t.engine.openSession('ten', SHELL);
      expect(await sshdOf(t, eleventh.id)).not.toBe(parents[0]);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 2, sessions: 11, sessionLimit: 10 });
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(2);
    } finally {
      await t.close();
    }
  });

  it('carries ten shells opened at once on one connection, as when restoring tabs', async () => {
    const t = await testEngine(sshd.clientConfig('burst'), { processTrees: false });
    const loginsBefore = await sshd.acceptedLogins();
    try {
      await t.engine.connect('burst'); // the spare channel is open before the burst
      const sessions = await Promise.all(Array.from({ length: 10 }, () => t.engine.openSession('burst', SHELL)));
      const parents = await Promise.all(sessions.map((s) => sshdOf(t, s.id)));
      expect(new Set(parents).size).toBe(1);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 1, sessions: 10 });
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('gives the tenth shell a second connection while the process monitor holds a slot', async () => {
    const t = await testEngine(sshd.clientConfig('watched'));
    const loginsBefore = await sshd.acceptedLogins();
    try {
      const sessions: SessionView[] = [];
      for (let i = 0; i < 10; i++) {
        const s = await t.engine.openSession('watched', SHELL);
        // Each until its processes are seen: the monitor then has its slot.
        await expect.poll(async () => (await sessionView(t, s.id))?.rootPid, { timeout: 5_000 }).toBeTypeOf('number');
        sessions.push(s);
      }
      const parents = await Promise.all(sessions.map((s) => sshdOf(t, s.id)));
      expect(new Set(parents.slice(0, 9)).size).toBe(1);
      expect(parents[9]).not.toBe(parents[0]);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 2, sessions: 10, sessionLimit: 10 });
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(2);
    } finally {
      await t.close();
    }
  });
});

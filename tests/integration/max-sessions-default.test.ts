// Ten shells on a server with sshd's default MaxSessions (10): the channel Hitch opens ahead of
// need never costs a person one of them. The tenth shell opens on the same connection, one at a
// time or all at once, and only an eleventh needs another login. The process monitor is a
// channel too: with process trees on it takes a free slot, and gives it to a shell that needs it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessView, SessionView } from '../../preload/api';
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

  it('has the process monitor give its slot to the tenth shell; the eleventh connection\'s monitor then sees all eleven', async () => {
    const t = await testEngine(sshd.clientConfig('watched'));
    const loginsBefore = await sshd.acceptedLogins();
    const rootOf = async (id: string): Promise<number | null> => (await sessionView(t, id))?.rootPid ?? null;
    try {
      const sessions: SessionView[] = [];
      for (let i = 0; i < 9; i++) {
        const s = await t.engine.openSession('watched', SHELL);
        // Each until its processes are seen: the monitor then has its slot.
        await expect.poll(() => rootOf(s.id), { timeout: 5_000 }).toBeTypeOf('number');
        sessions.push(s);
      }
      // Nine shells and the monitor fill the connection; the tenth shell takes the monitor's slot.
      sessions.push(await t.engine.openSession('watched', SHELL));
      const parents = await Promise.all(sessions.map((s) => sshdOf(t, s.id)));
      expect(new Set(parents).size).toBe(1);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 1, sessions: 10, sessionLimit: 10 });
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(1);
      // No slot is left for a monitor: the tenth shell's processes are not seen yet, and that is logged once.
      await t.engine.processTree('watched');
      await t.engine.processTree('watched');
      expect(await rootOf(sessions[9]!.id)).toBeNull();
      expect(t.logLines.filter((l) => l.includes('no process snapshot for a connection') && l.includes('MaxSessions'))).toHaveLength(1);
      expect((await masterOf(t, sshd.port))?.processesHidden).toMatch(/^Processes of 10 sessions are not shown: \S+ allows 10 sessions per connection \(MaxSessions\)/);

      // The eleventh needs another login; that connection's monitor sees the first one's shells too.
      const eleventh = await t.engine.openSession('watched', SHELL);
      expect(await sshdOf(t, eleventh.id)).not.toBe(parents[0]);
      expect(await masterOf(t, sshd.port)).toMatchObject({ state: 'ready', connections: 2, sessions: 11 });
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(2);
      await expect.poll(() => rootOf(sessions[9]!.id), { timeout: 5_000 }).toBeTypeOf('number');
      await expect.poll(() => rootOf(eleventh.id), { timeout: 5_000 }).toBeTypeOf('number');
      expect((await masterOf(t, sshd.port))?.processesHidden).toBeNull();
      t.engine.writeSession(sessions[9]!.id, 'echo shell-$$-end\n');
      expect(Number((await t.waitForOutput(sessions[9]!.id, /shell-(\d+)-end/))[1])).toBe(await rootOf(sessions[9]!.id));

      // A job in the tenth shell shows under it and is stopped through the other connection's monitor.
      t.engine.writeSession(sessions[9]!.id, 'sleep 602\n');
      const find = async (): Promise<ProcessView | undefined> => (await t.engine.processTree('watched')).processes.find((p) => p.command === 'sleep 602');
      await expect.poll(find, { timeout: 5_000 }).toBeDefined();
      const job = (await find())!;
      expect(job).toMatchObject({ sessionId: sessions[9]!.id, ppid: await rootOf(sessions[9]!.id) });
      expect(await t.engine.stopProcess('watched', job.pid, 'process', 2_000)).toEqual([{ pid: job.pid, outcome: 'gone' }]);
      expect((await sshd.acceptedLogins()) - loginsBefore).toBe(2);
    } finally {
      await t.close();
    }
  });
});

// The problem Hitch started from: a job started over SSH that nothing can reach any more.
// Every master shows the processes its sessions started, grouped by session, and signals
// them over the same connection.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessView } from '../../preload/api';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';

const shell = { kind: 'shell', cols: 80, rows: 24 } as const;

describe('process trees and signals', () => {
  let sshd: Sshd;
  let t: TestEngine;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await testEngine(sshd.clientConfig('box'));
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  const tree = async (): Promise<ProcessView[]> => (await t.engine.processTree('box')).processes;
  const find = async (pattern: RegExp): Promise<ProcessView | undefined> => (await tree()).find((p) => pattern.test(p.command));
  const rootOf = async (sessionId: string): Promise<number | null> =>
    (await t.engine.snapshot()).sessions.find((s) => s.id === sessionId)?.rootPid ?? null;

  it('shows top under the session that started it, kills it from the tree, and leaves the other session working', async () => {
    const a = await t.engine.openSession('box', shell);
    const b = await t.engine.openSession('box', shell);
    await expect.poll(() => rootOf(a.id)).not.toBeNull();
    await expect.poll(() => rootOf(b.id)).not.toBeNull();
    expect(await rootOf(a.id)).not.toBe(await rootOf(b.id));

    t.engine.writeSession(a.id, 'top -d 1\n');
    await expect.poll(() => find(/^top -d 1$/)).toBeDefined();
    const top = (await find(/^top -d 1$/))!;
    expect(top).toMatchObject({ sessionId: a.id, detached: false, user: sshd.user });
    expect(top.ppid).toBe(await rootOf(a.id)); // the shell of session a is its parent

    const outcomes = await t.engine.signalProcess('box', top.pid, 'TERM', 'process');
    expect(outcomes).toEqual([{ pid: top.pid, outcome: 'gone' }]);
    expect(await find(/^top -d 1$/)).toBeUndefined();

    t.engine.writeSession(b.id, 'echo b-still-$((2*21))\n');
    await t.waitForOutput(b.id, /b-still-42/);
    t.engine.writeSession(a.id, 'echo a-back-$((2*3))\n');
    await t.waitForOutput(a.id, /a-back-6/);
    expect(await sshd.acceptedLogins()).toBe(1);
  });

  it('stops a job that ignores TERM by escalating to KILL after the grace period', async () => {
    const s = await t.engine.openSession('box', shell);
    t.engine.writeSession(s.id, `sh -c 'trap "" TERM; exec sleep 601' &\n`);
    await expect.poll(() => find(/^sleep 601$/)).toBeDefined();
    const job = (await find(/^sleep 601$/))!;
    const started = Date.now();
    const outcomes = await t.engine.stopProcess('box', job.pid, 'process', 400);
    expect(outcomes).toEqual([{ pid: job.pid, outcome: 'killed' }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(await find(/^sleep 601$/)).toBeUndefined();
  });

  it('kills a subtree and leaves its siblings alive', async () => {
    const s = await t.engine.openSession('box', shell);
    t.engine.writeSession(s.id, `sh -c 'sleep 602 & sleep 603 & wait' & sleep 604 &\n`);
    await expect.poll(async () => (await tree()).filter((p) => /^sleep 60[234]$/.test(p.command)).length).toBe(3);
    const parent = (await tree()).find((p) => p.command.includes('sleep 602 & sleep 603'))!;
    const outcomes = await t.engine.signalProcess('box', parent.pid, 'TERM', 'tree');
    expect(outcomes.map((o) => o.outcome)).toEqual(['gone', 'gone', 'gone']);
    expect(outcomes.at(-1)?.pid).toBe(parent.pid); // children first, the parent last
    const left = (await tree()).filter((p) => /^sleep 60[234]$/.test(p.command)).map((p) => p.command);
    expect(left).toEqual(['sleep 604']);
  });

  it('refuses a pid that is not in the tree before sending anything', async () => {
    // A process of the same user, started outside Hitch: not ours to signal.
    const outsider = Number(execFileSync('su', ['-s', '/bin/sh', '-c', 'sleep 605 >/dev/null 2>&1 & echo $!', sshd.user]).toString().trim());
    try {
      await expect(t.engine.signalProcess('box', outsider, 'KILL', 'process')).rejects.toMatchObject({
        code: 'bad-request',
        message: expect.stringMatching(/not in this master's process tree; nothing was sent/),
      });
      expect(() => process.kill(outsider, 0)).not.toThrow(); // still alive
    } finally {
      process.kill(outsider, 'SIGKILL');
    }
  });

  it('keeps a job running after its tab closes only when asked, and then shows it as detached', async () => {
    const kept = await t.engine.openSession('box', { kind: 'exec', command: 'sleep 606', pty: null });
    const dropped = await t.engine.openSession('box', { kind: 'exec', command: 'sleep 607', pty: null });
    await expect.poll(() => find(/^sleep 606$/)).toBeDefined();
    await expect.poll(() => find(/^sleep 607$/)).toBeDefined();
    t.engine.closeSession(kept.id, true);
    t.engine.closeSession(dropped.id);
    await expect.poll(() => find(/^sleep 607$/), { timeout: 5000 }).toBeUndefined();
    await expect.poll(async () => (await find(/^sleep 606$/))?.detached, { timeout: 5000 }).toBe(true);
    const detached = (await find(/^sleep 606$/))!;
    expect(await t.engine.signalProcess('box', detached.pid, 'KILL', 'process')).toEqual([{ pid: detached.pid, outcome: 'gone' }]);
  });

  it('sends the UI only what changed', async () => {
    const s = await t.engine.openSession('box', shell);
    await expect.poll(() => rootOf(s.id)).not.toBeNull();
    // A snapshot of a quiet host sends nothing. Quiet means no snapshot-to-snapshot change at
    // all, and ps's %CPU is a lifetime average that drifts by itself as processes age, so wait
    // for a snapshot that finds nothing new (one that sent whole trees never would).
    const changesOfOneSnapshot = async (): Promise<number> => {
      const before = t.events.length;
      await tree();
      return t.events.slice(before).filter((e) => e.event === 'processes.changed').length;
    };
    await expect.poll(changesOfOneSnapshot, { timeout: 10_000 }).toBe(0);
    t.engine.writeSession(s.id, 'sleep 608 &\n');
    await expect.poll(() => find(/^sleep 608$/)).toBeDefined();
    const added = t.events.filter((e) => e.event === 'processes.changed').flatMap((e) => (e.event === 'processes.changed' ? e.payload.upserted : []));
    expect(added.some((p) => p.command === 'sleep 608')).toBe(true);
  });
});

// What a durable shell costs when the network blips, and what a wake costs (issue #13), at
// one round-trip time, on a real sshd with tmux through a delaying TCP proxy:
// - handshake: a fresh connection logged in and ready (the yardstick);
// - reattach: from every connection being reset (the network usable again at once, as after
//   a Wi-Fi roam or a NAT rebinding) to every durable shell rejoined and echoing a line typed
//   into it; target ≤ handshake + 2 RTT;
// - wake-alive / wake-dead: a wake's probe of every master answered, or the dead one found
//   (traffic silently dropped); target ≤ 1 RTT, and ≤ 1 RTT + the probe deadline.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { summarize } from '../main/engine/bench/bench-stats';
import { PROBE_DEADLINE_MS } from '../main/engine/engine';
import { STABLE_MS } from '../main/engine/masters/host-master';
import type { HitchEvent } from '../preload/api';
import { testEngine, type TestEngine } from '../tests/fixtures/engine';
import type { Sshd } from '../tests/fixtures/sshd';
import { behindProxy, startProxy, type TcpProxy } from '../tests/fixtures/tcp-proxy';

/** Ends Hitch's tmux server and clients of the test host's user (this machine's own sshd). */
export async function endHitchTmux(user: string): Promise<void> {
  await promisify(execFile)('pkill', ['-u', user, '-f', '^tmux -L hitch ']).catch(() => undefined);
}

export interface DurableRow {
  rtt_ms: number;
  measure: 'handshake' | 'reattach' | 'wake-alive' | 'wake-dead';
  n: number;
  median_ms: number;
  p95_ms: number;
  /** What the issue asks for, from the handshake measured in the same run. */
  target_ms: number | null;
}

/** Durable shells per master in the reattach measure (the example: four shells). */
const SHELLS = 4;
/** Each reattach waits for a connection up STABLE_MS (10 s): a few rounds. */
const REATTACH_ROUNDS = 5;

export async function durableBench(sshd: Sshd, rtt: number, rounds: number): Promise<DurableRow[]> {
  // Hitch's tmux server, left by an earlier run as another user's processes, is not measured.
  await endHitchTmux(sshd.user);
  const proxy = await startProxy({ targetPort: sshd.port, delayMs: rtt / 2 });
  const t = await testEngine(await behindProxy(sshd, proxy, 'durable'), { durableShells: true, processTrees: false });
  try {
    process.stderr.write(`durable shells at ${rtt} ms RTT: ${Math.min(rounds, REATTACH_ROUNDS)} reattaches of ${SHELLS} shells, ${rounds} wake probes…\n`);
    await t.engine.connect('durable');
    const handshake = await measure(rounds, async () => {
      // A master of another engine: the whole login, as reconnecting does it.
      const fresh = await testEngine('', { configPath: t.configPath, processTrees: false, controlSocketDir: null });
      try {
        const started = performance.now();
        await fresh.engine.connect('durable');
        return performance.now() - started;
      } finally {
        await fresh.close();
      }
    });
    const shells: string[] = [];
    for (let i = 0; i < SHELLS; i++) {
      const shell = await t.engine.openSession('durable', { kind: 'shell', cols: 80, rows: 24 });
      if (!shell.durable) throw new Error(`shells are not durable here: ${shell.notDurable ?? 'no reason given'}`);
      shells.push(shell.id);
    }
    for (const id of shells) await echoed(t, id);
    // A blip after a quiet spell (one right after another waits out a backoff: see host-master.ts).
    const reattach = await measure(Math.min(rounds, REATTACH_ROUNDS), async () => {
      const readySince = (await t.engine.snapshot()).masters[0]?.connectedAt ?? 0;
      await new Promise((r) => setTimeout(r, Math.max(0, readySince + STABLE_MS + 100 - Date.now())));
      const started = performance.now();
      const back = shells.map((id) => rejoined(t, id));
      proxy.resetAll();
      await Promise.all(back.map(async (b, i) => (await b, echoed(t, shells[i]!))));
      return performance.now() - started;
    });
    const wakeAlive = await measure(rounds, async () => {
      const started = performance.now();
      const [answer] = await t.engine.probeMasters();
      if (!answer?.answered) throw new Error('a live master did not answer the probe');
      return performance.now() - started;
    });
    // Each dead round costs the deadline: a few are enough.
    const wakeDead = await measure(Math.min(rounds, 3), async () => {
      proxy.blackhole(true);
      // The network died while the machine slept: what was already on its way has arrived.
      await new Promise((r) => setTimeout(r, 500));
      const started = performance.now();
      const [answer] = await t.engine.probeMasters();
      const ms = performance.now() - started;
      if (answer?.answered !== false) throw new Error('a dead master answered the probe');
      proxy.blackhole(false);
      await back(t, proxy);
      return ms;
    });
    const h = handshake.median_ms;
    return [
      row(rtt, 'handshake', handshake, null),
      row(rtt, 'reattach', reattach, h + 2 * rtt),
      row(rtt, 'wake-alive', wakeAlive, rtt > 0 ? rtt : null),
      row(rtt, 'wake-dead', wakeDead, rtt + PROBE_DEADLINE_MS),
    ];
  } finally {
    await t.close();
    await proxy.close();
    await endHitchTmux(sshd.user);
  }
}

function row(rtt: number, measure: DurableRow['measure'], s: ReturnType<typeof summarize>, target: number | null): DurableRow {
  return { rtt_ms: rtt, measure, n: s.n, median_ms: s.median_ms, p95_ms: s.p95_ms, target_ms: target === null ? null : Math.round(target * 10) / 10 };
}

async function measure(rounds: number, once: () => Promise<number>): Promise<ReturnType<typeof summarize>> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) samples.push(await once());
  return summarize(samples);
}

/** Waits for the next event that `match` accepts. */
function next(t: TestEngine, match: (e: HitchEvent) => boolean, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('timed out waiting for the engine'));
    }, timeoutMs);
    const off = t.engine.onEvent((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** Resolves once the shell has lost its connection and is back. */
async function rejoined(t: TestEngine, id: string): Promise<void> {
  await next(t, (e) => e.event === 'session.changed' && e.payload.id === id && e.payload.reconnecting);
  await next(t, (e) => e.event === 'session.changed' && e.payload.id === id && !e.payload.reconnecting && e.payload.state === 'open');
}

let marks = 0;
/** Types a line into the shell and waits for the shell's answer. */
async function echoed(t: TestEngine, id: string): Promise<void> {
  const mark = `echo-${++marks}`;
  const seen = t.waitForOutput(id, new RegExp(`${mark}-ok`), 30_000);
  await t.engine.writeSession(id, `echo ${mark}-ok\n`);
  await seen;
}

/** After a dead round: the stale connection closed and reset, the master back and its shells with it. */
async function back(t: TestEngine, proxy: TcpProxy): Promise<void> {
  proxy.resetAll();
  const deadline = Date.now() + 30_000;
  let wentDown = false;
  for (;;) {
    const snap = await t.engine.snapshot();
    const ready = snap.masters[0]?.state === 'ready' && snap.sessions.every((s) => s.state !== 'open' || !s.reconnecting);
    wentDown ||= !ready;
    if (wentDown && ready) return;
    if (Date.now() > deadline) throw new Error('the master did not come back');
    await new Promise((r) => setTimeout(r, 20));
  }
}

// What a person feels (issue #14), measured as the page sees it: a client of the web host (the
// renderer's own transport: router, JSON over a WebSocket) asks, and the clock stops when the
// answer reaches it. At one round-trip time, through a delaying TCP proxy to a real sshd,
// with the app's defaults (shells durable where the host has tmux):
// - shell-prompt: a new shell on a ready master, until its prompt arrives;
// - shell-prompt-fresh: the same with the master disconnected first (the login included);
// - keystroke-echo: one key typed into a shell, until its echo arrives;
// - signal-exit: Stop job (TERM, grace period) on a job that exits on TERM, until the outcome;
// - snapshot-500: the process tree of a host running 500 more processes.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { localApi } from '../main/api/connection';
import { createRouter } from '../main/api/router';
import { summarize } from '../main/engine/bench/bench-stats';
import { startWebHost } from '../main/web/server';
import type { HitchEvent, ProcessTreeView, SessionView, SignalOutcome } from '../preload/api';
import { testEngine } from '../tests/fixtures/engine';
import type { Sshd } from '../tests/fixtures/sshd';
import { behindProxy, startProxy } from '../tests/fixtures/tcp-proxy';
import { endHitchTmux } from './durable';

export interface InteractiveRow {
  rtt_ms: number;
  measure: 'shell-prompt' | 'shell-prompt-fresh' | 'keystroke-echo' | 'signal-exit' | 'snapshot-500';
  n: number;
  median_ms: number;
  p95_ms: number;
}

/** A page of the web host, as the renderer is one: calls by id, and each event with when it came. */
class Page {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: { ok: boolean; result?: unknown; error?: { message: string } }) => void>();
  private readonly listeners = new Set<(event: HitchEvent, at: number) => void>();
  /** The last events, to say what did come when a wait times out. */
  private readonly recent: string[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const at = performance.now();
      const message = JSON.parse(String(raw)) as Record<string, unknown>;
      if (typeof message.event === 'string') {
        this.recent.push(JSON.stringify(message).slice(0, 300));
        if (this.recent.length > 12) this.recent.shift();
        for (const l of this.listeners) l(message as unknown as HitchEvent, at);
      }
      else if (typeof message.id === 'number') this.waiting.get(message.id)?.(message as never);
    });
  }

  static async open(port: number, token: string): Promise<Page> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api?token=${token}`, { headers: { origin: `http://127.0.0.1:${port}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Page(ws);
  }

  call<T>(method: string, params: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (reply) => {
        this.waiting.delete(id);
        if (reply.ok) resolve(reply.result as T);
        else reject(new Error(`${method}: ${reply.error?.message}`));
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Resolves with the time of the first event `match` accepts from now on. */
  next(match: (event: HitchEvent) => boolean, what: string, timeoutMs = 30_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error(`timed out waiting for ${what}; the last events were:\n${this.recent.join('\n')}`));
      }, timeoutMs);
      const listener = (event: HitchEvent, at: number): void => {
        if (!match(event)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(at);
      };
      this.listeners.add(listener);
    });
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * Output of a session (any session, as it is not known before its reply) matching `pattern`,
 * in what it has written since the wait began: output arrives in as many pieces as the host
 * wrote it in, and a prompt may take two.
 */
const outputMatching = (pattern: RegExp, sessionId?: () => string | null): ((e: HitchEvent) => boolean) => {
  const seen = new Map<string, string>();
  return (e) => {
    if (e.event !== 'session.data' || typeof e.payload.data !== 'string') return false;
    const id = e.payload.sessionId;
    if ((sessionId?.() ?? id) !== id) return false;
    const text = (seen.get(id) ?? '') + e.payload.data;
    seen.set(id, text);
    return pattern.test(text);
  };
};

const PROMPT = /\$ $/m;

export async function interactiveBench(sshd: Sshd, rtt: number, rounds: number): Promise<InteractiveRow[]> {
  await endHitchTmux(sshd.user);
  const proxy = await startProxy({ targetPort: sshd.port, delayMs: rtt / 2 });
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-ui-'));
  const t = await testEngine(await behindProxy(sshd, proxy, 'ui'), { durableShells: true, controlSocketDir: null });
  const staticDir = join(dir, 'renderer');
  await mkdir(staticDir);
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hitch</title>');
  const host = await startWebHost({ api: localApi(createRouter(t.engine, t.engine.options.log)), staticDir, log: t.engine.options.log });
  const page = await Page.open(host.port, host.token);
  const opened: string[] = [];
  try {
    process.stderr.write(`interactive at ${rtt} ms RTT, ${rounds} rounds each, through the web host…\n`);
    await page.call('master.connect', { hostId: 'ui' });

    /** A new shell until its prompt reaches the page. */
    const shell = async (what: string): Promise<{ ms: number; id: string }> => {
      let id: string | null = null;
      const started = performance.now();
      const prompt = page.next(outputMatching(PROMPT), `the prompt of ${what}`);
      const view = await page.call<SessionView>('session.open', { hostId: 'ui', cols: 80, rows: 24 });
      id = view.id;
      opened.push(id);
      return { ms: (await prompt) - started, id };
    };
    const samples = { prompt: [] as number[], fresh: [] as number[], echo: [] as number[], stop: [] as number[], snapshot: [] as number[] };
    await shell('the first shell'); // the first durable shell starts Hitch's tmux server on the host: not measured
    for (let i = 0; i < rounds; i++) samples.prompt.push((await shell(`new shell ${i + 1}`)).ms);
    for (const id of opened.splice(0)) await page.call('session.close', { sessionId: id });

    for (let i = 0; i < Math.min(rounds, 5); i++) {
      await page.call('master.disconnect', { hostId: 'ui' });
      samples.fresh.push((await shell(`a shell on a new connection, round ${i + 1}`)).ms);
      for (const id of opened.splice(0)) await page.call('session.close', { sessionId: id });
    }

    const { id } = await shell('the shell to type into');
    for (let i = 0; i < rounds; i++) {
      const key = String.fromCharCode(97 + (i % 26));
      const started = performance.now();
      const echo = page.next(outputMatching(new RegExp(key), () => id), `the echo of ${key}`);
      await page.call('session.write', { sessionId: id, data: key });
      samples.echo.push((await echo) - started);
      const erased = page.next(outputMatching(/\x08/, () => id), 'the erase');
      await page.call('session.write', { sessionId: id, data: '\x7f' });
      await erased;
    }

    for (let i = 0; i < Math.min(rounds, 10); i++) {
      const job = await page.call<SessionView>('session.exec', { hostId: 'ui', command: `exec sleep ${7000 + i}`, cols: 80, rows: 24, pty: false });
      opened.push(job.id);
      let pid: number | undefined;
      for (let tries = 0; pid === undefined && tries < 100; tries++) {
        const tree = await page.call<ProcessTreeView>('processes.get', { hostId: 'ui' });
        pid = tree.processes.find((p) => p.command === `sleep ${7000 + i}`)?.pid;
      }
      if (pid === undefined) throw new Error('the job never showed in the process tree');
      const started = performance.now();
      const { outcomes } = await page.call<{ outcomes: SignalOutcome[] }>('processes.stop', { hostId: 'ui', pid, scope: 'process', graceMs: 5_000 });
      samples.stop.push(performance.now() - started);
      if (!outcomes.some((o) => o.pid === pid && o.outcome === 'gone')) throw new Error(`Stop job said ${JSON.stringify(outcomes)}`);
    }

    const crowd = await page.call<SessionView>('session.exec', {
      hostId: 'ui',
      command: 'for i in $(seq 500); do sleep 900 & done; echo crowd-ready; wait',
      cols: 80,
      rows: 24,
      pty: false,
    });
    opened.push(crowd.id);
    await page.next(outputMatching(/crowd-ready/, () => crowd.id), '500 processes started');
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      const tree = await page.call<ProcessTreeView>('processes.get', { hostId: 'ui' });
      samples.snapshot.push(performance.now() - started);
      if (tree.processes.length < 500) throw new Error(`the snapshot holds ${tree.processes.length} processes, not 500 and more`);
    }

    const row = (measure: InteractiveRow['measure'], values: number[]): InteractiveRow => {
      const s = summarize(values);
      return { rtt_ms: rtt, measure, n: s.n, median_ms: s.median_ms, p95_ms: s.p95_ms };
    };
    return [
      row('shell-prompt', samples.prompt),
      row('shell-prompt-fresh', samples.fresh),
      row('keystroke-echo', samples.echo),
      row('signal-exit', samples.stop),
      row('snapshot-500', samples.snapshot),
    ];
  } finally {
    for (const id of opened) await page.call('session.close', { sessionId: id }).catch(() => undefined);
    page.close();
    await host.close();
    await t.close();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
    await endHitchTmux(sshd.user);
    await promisify(execFile)('pkill', ['-u', sshd.user, '-x', 'sleep']).catch(() => undefined);
  }
}

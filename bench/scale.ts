// Many sessions over many masters at once: how long each session takes to open as the engine
// sees it (openSession called → the shell's channel ready), and the memory the engine holds
// with all of them open. Each master is another destination: another port of a real sshd
// started here (an sshd listens on 16 sockets at most, so ten ports per sshd). Sessions open in
// rounds, one per master per round, every master at once.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { quantile, summarize } from '../main/engine/bench/bench-stats';
import { startSshd, freePort, type Sshd } from '../tests/fixtures/sshd';
import { testEngine } from '../tests/fixtures/engine';

/** One line of the JSON output (`"scale"`, `"scale_large"`). */
export interface ScaleResult {
  /** Masters ready at the end of the run. */
  masters: number;
  /** Sessions opened (each one timed). */
  sessions: number;
  open_p50_ms: number;
  open_p99_ms: number;
  /** This process's resident memory with every session open: the engine runs in it. */
  main_rss_mb: number;
}

export interface ScaleOptions {
  masters: number;
  perMaster: number;
  /** The servers' MaxSessions. */
  maxSessions: number;
}

/** What explains the figures, printed beside them (not part of the JSON contract). */
export interface ScaleDetail {
  /** Per round (the k-th session of every master): median and slowest open, ms. */
  rounds: { median_ms: number; max_ms: number }[];
  /** Logins the servers accepted, the masters' own included. */
  logins: number;
  /** SSH connections the masters hold at the end. */
  connections: number;
  /** This process's RSS before the masters connected, MB. */
  rss_before_mb: number;
  /** CPU time the engine's process used while the sessions opened, and the time that took, s. */
  engine_cpu_s: number;
  wall_s: number;
  /** The engine's event loop delay meanwhile, p99 and max, ms: how long it kept anything waiting. */
  loop_delay_p99_ms: number;
  loop_delay_max_ms: number;
}

const PER_SSHD = 10;
const SHELL = { kind: 'shell', cols: 80, rows: 24 } as const;
const mb = (bytes: number): number => Math.round(bytes / 1048576);

export async function scaleBench(opts: ScaleOptions): Promise<{ result: ScaleResult; detail: ScaleDetail }> {
  const servers: { sshd: Sshd; ports: number[] }[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-'));
  try {
    for (let left = opts.masters; left > 0; left -= PER_SSHD) {
      const extra = await Promise.all(Array.from({ length: Math.min(PER_SSHD, left) - 1 }, () => freePort()));
      const sshd = await startSshd({ maxSessions: opts.maxSessions, extraConfig: extra.map((p) => `Port ${p}`) });
      servers.push({ sshd, ports: [sshd.port, ...extra] });
    }
    const knownHosts = join(dir, 'known_hosts');
    const lines = servers.flatMap(({ sshd, ports }) => ports.map((p) => sshd.knownHostsLine.replace(`:${sshd.port} `, `:${p} `)));
    await writeFile(knownHosts, lines.join('\n') + '\n');
    const hosts = servers.flatMap(({ sshd, ports }) => ports.map((port) => ({ sshd, port })));
    const config = hosts.map(({ sshd, port }, i) =>
      sshd.clientConfig(`m${i}`).replace(`Port ${sshd.port}`, `Port ${port}`).replace(sshd.knownHosts, knownHosts),
    );
    const rssBefore = process.memoryUsage().rss;
    // As the app runs it: process trees on (a monitor channel per connection), a spare channel.
    const t = await testEngine(config.join('\n'));
    try {
      process.stderr.write(`scale: ${opts.masters * opts.perMaster} sessions over ${opts.masters} masters (MaxSessions ${opts.maxSessions})…\n`);
      await Promise.all(hosts.map((_, i) => t.engine.connect(`m${i}`)));
      const opens: number[] = [];
      const rounds: ScaleDetail['rounds'] = [];
      const cpuBefore = process.cpuUsage();
      const wallBefore = performance.now();
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      for (let round = 0; round < opts.perMaster; round++) {
        const times = await Promise.all(
          hosts.map(async (_, i) => {
            const started = performance.now();
            await t.engine.openSession(`m${i}`, SHELL);
            return performance.now() - started;
          }),
        );
        opens.push(...times);
        const s = summarize(times);
        rounds.push({ median_ms: s.median_ms, max_ms: s.max_ms });
      }
      // The engine runs in this process (no Electron here): its RSS is the engine's, with the
      // bench's own modules and whatever earlier runs left on the heap.
      const rss = process.memoryUsage().rss;
      const cpu = process.cpuUsage(cpuBefore);
      const wall = performance.now() - wallBefore;
      loop.disable();
      const ready = (await t.engine.snapshot()).masters.filter((m) => m.state === 'ready');
      let logins = 0;
      for (const { sshd } of servers) logins += await sshd.acceptedLogins();
      return {
        result: {
          masters: ready.length,
          sessions: opens.length,
          open_p50_ms: summarize(opens).median_ms,
          open_p99_ms: Math.round(quantile([...opens].sort((x, y) => x - y), 0.99) * 10) / 10,
          main_rss_mb: mb(rss),
        },
        detail: {
          rounds,
          logins,
          connections: ready.reduce((n, m) => n + m.connections, 0),
          rss_before_mb: mb(rssBefore),
          engine_cpu_s: Math.round((cpu.user + cpu.system) / 1e5) / 10,
          wall_s: Math.round(wall / 100) / 10,
          loop_delay_p99_ms: Math.round(loop.percentile(99) / 1e6),
          loop_delay_max_ms: Math.round(loop.max / 1e6),
        },
      };
    } finally {
      await t.close();
    }
  } finally {
    for (const { sshd } of servers) await sshd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The report's line for one run. */
export function scaleLine(name: string, r: ScaleResult, d: ScaleDetail): string {
  const rounds = d.rounds.map((x) => `${x.median_ms}/${x.max_ms}`).join(' ');
  return (
    `${name}: ${r.sessions} sessions on ${r.masters} masters: open p50 ${r.open_p50_ms} ms, p99 ${r.open_p99_ms} ms ` +
    `(${(r.open_p99_ms / r.open_p50_ms).toFixed(2)}×; target p99 ≤ 2 × p50), RSS ${r.main_rss_mb} MB (target ≤ 300; ${d.rss_before_mb} MB before); ` +
    `engine CPU ${d.engine_cpu_s} s of ${d.wall_s} s, event loop delay p99 ${d.loop_delay_p99_ms} ms (max ${d.loop_delay_max_ms}); ${d.connections} connections, ${d.logins} logins; per round median/max ms: ${rounds}`
  );
}

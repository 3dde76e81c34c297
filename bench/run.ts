// `npm run bench`: what multiplexing saves, on a real sshd started here, at 0 ms and at 50 ms
// round-trip time (through a TCP proxy that delays each chunk: this machine has no netem).
// Also durable shells' reattach and a wake's probe (bench/durable.ts), what a person feels
// through the web host (bench/interactive.ts), one session's throughput on the paths users
// take (bench/throughput.ts), 200 sessions over 20 masters and 1,000 over 100 (bench/scale.ts),
// and hitch's start (bench/cli.ts).
// Usage: npm run bench -- [--rounds N] [--json FILE] [--quick] [--only scale|throughput|cli|interactive]
// `--only scale` runs the two scale runs alone (a few minutes), for working on them; the JSON
// then holds only "scale" and "scale_large". `--only throughput` runs the throughput part alone
// (the JSON holds only "throughput"), `--only cli` hitch's start alone (only "cli"),
// `--only interactive` what a person feels through the web host alone (only "interactive").
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchMethod, BenchResult } from '../preload/api';
import { startSshd, type Sshd } from '../tests/fixtures/sshd';
import { startProxy } from '../tests/fixtures/tcp-proxy';
import { testEngine } from '../tests/fixtures/engine';
import { cliBench, type CliRow } from './cli';
import { interactiveBench, type InteractiveRow } from './interactive';
import { throughput } from './throughput';
import { durableBench, type DurableRow } from './durable';
import { scaleBench, scaleLine, type ScaleResult } from './scale';
import { floodBench } from './flood';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    json: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const ONLY = ['scale', 'throughput', 'cli', 'interactive'];
if (values.only !== undefined && !ONLY.includes(values.only)) throw new Error(`--only takes ${ONLY.map((o) => `"${o}"`).join(', ')}, not "${values.only}"`);
const ROUNDS = values.quick ? 3 : Number(values.rounds);
const RTTS = [0, 50];
const THROUGHPUT_BYTES = (values.quick ? 32 : 256) * 1024 * 1024;
// "scale" leaves room past its sessions (the monitor and spare channels included); "scale_large"
// runs against sshd's default MaxSessions, 10, as issue #14 asks.
const SCALE = values.quick ? { masters: 4, perMaster: 5, maxSessions: 9 } : { masters: 20, perMaster: 10, maxSessions: 14 };
const SCALE_LARGE = values.quick ? { masters: 10, perMaster: 10, maxSessions: 10 } : { masters: 100, perMaster: 10, maxSessions: 10 };
/** `seq 1 FLOOD_LINES` in a terminal (14 MB, the issue's flood), at 50 ms RTT. */
const FLOOD_LINES = 2_000_000;
const FLOOD_ROUNDS = values.quick ? 1 : 3;

/** Targets from DESIGN.md, in round trips at 50 ms RTT unless noted. */
const TARGET_RTT: Partial<Record<BenchMethod, number>> = { 'hitch-channel': 2.1, 'hitch-spare': 1.1 };

/** One line of the JSON output: a method's figures at one round-trip time. */
type Row = { rtt_ms: number } & Omit<BenchResult, 'ratio'>;

function hostBlock(alias: string, sshd: Sshd, port: number, knownHosts: string): string {
  return sshd.clientConfig(alias).replace(`Port ${sshd.port}`, `Port ${port}`).replace(sshd.knownHosts, knownHosts);
}

async function latency(sshd: Sshd, dir: string): Promise<{ rows: Row[]; skipped: string[] }> {
  const rows: Row[] = [];
  const skipped: string[] = [];
  for (const rtt of RTTS) {
    const proxy = rtt > 0 ? await startProxy({ targetPort: sshd.port, delayMs: rtt / 2 }) : null;
    const port = proxy?.port ?? sshd.port;
    const knownHosts = join(dir, `known_hosts_${port}`);
    await writeFile(knownHosts, sshd.knownHostsLine.replace(`:${sshd.port} `, `:${port} `) + '\n');
    const t = await testEngine(hostBlock('bench', sshd, port, knownHosts), { processTrees: false });
    try {
      process.stderr.write(`latency at ${rtt} ms RTT, ${ROUNDS} rounds of each method, interleaved…\n`);
      const report = await t.engine.bench('bench', ROUNDS);
      for (const r of report.results) {
        const { method, n, median_ms, p95_ms, min_ms, max_ms } = r;
        rows.push({ rtt_ms: rtt, method, n, median_ms, p95_ms, min_ms, max_ms });
      }
      for (const s of report.skipped) skipped.push(`${s.method} at ${rtt} ms: ${s.reason}`);
    } finally {
      await t.close();
      await proxy?.close();
    }
  }
  return { rows, skipped };
}

/** Both scale runs, each with its report line. */
async function scaleRuns(): Promise<{ scale: ScaleResult; scale_large: ScaleResult; lines: string[] }> {
  const small = await scaleBench(SCALE);
  const large = await scaleBench(SCALE_LARGE);
  return { scale: small.result, scale_large: large.result, lines: [scaleLine('scale', small.result, small.detail), scaleLine('scale_large', large.result, large.detail)] };
}

function table(rows: Row[]): string {
  const lines = ['rtt  method              n   median     p95     min     max   ratio  round trips'];
  for (const rtt of RTTS) {
    const base = rows.find((r) => r.rtt_ms === rtt && r.method === 'fresh-ssh2')?.median_ms;
    for (const r of rows.filter((x) => x.rtt_ms === rtt)) {
      const trips = rtt > 0 ? (r.median_ms / rtt).toFixed(2) : '';
      const target = rtt > 0 && TARGET_RTT[r.method] ? ` (target ≤ ${TARGET_RTT[r.method]})` : '';
      lines.push(
        `${String(rtt).padStart(3)}  ${r.method.padEnd(18)} ${String(r.n).padStart(3)} ${r.median_ms.toFixed(1).padStart(8)} ${r.p95_ms
          .toFixed(1)
          .padStart(7)} ${r.min_ms.toFixed(1).padStart(7)} ${r.max_ms.toFixed(1).padStart(7)} ${base ? (r.median_ms / base).toFixed(3).padStart(7) : '      -'}  ${trips}${target}`,
      );
    }
  }
  return lines.join('\n');
}

function interactiveTable(rows: InteractiveRow[]): string {
  const lines = ['rtt  what a person feels   n   median     p95  round trips'];
  for (const r of rows) {
    const trips = r.rtt_ms > 0 ? (r.median_ms / r.rtt_ms).toFixed(2) : '';
    lines.push(`${String(r.rtt_ms).padStart(3)}  ${r.measure.padEnd(18)} ${String(r.n).padStart(3)} ${r.median_ms.toFixed(1).padStart(8)} ${r.p95_ms.toFixed(1).padStart(7)}  ${trips}`);
  }
  return lines.join('\n');
}

function durableTable(rows: DurableRow[]): string {
  const lines = ['rtt  durable shells       n   median     p95   target  round trips'];
  for (const r of rows) {
    const trips = r.rtt_ms > 0 ? (r.median_ms / r.rtt_ms).toFixed(2) : '';
    const target = r.target_ms === null ? '       -' : `≤ ${r.target_ms.toFixed(0)}`.padStart(8);
    lines.push(`${String(r.rtt_ms).padStart(3)}  ${r.measure.padEnd(18)} ${String(r.n).padStart(3)} ${r.median_ms.toFixed(1).padStart(8)} ${r.p95_ms.toFixed(1).padStart(7)} ${target}  ${trips}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (values.only === 'scale') {
    const sc = await scaleRuns();
    for (const line of sc.lines) process.stdout.write(line + '\n');
    await writeJson({ scale: sc.scale, scale_large: sc.scale_large });
    return;
  }
  if (values.only === 'throughput' || values.only === 'cli' || values.only === 'interactive') {
    const sshd = await startSshd({ maxSessions: 20 });
    try {
      if (values.only === 'interactive') {
        const interactive: InteractiveRow[] = [];
        for (const rtt of RTTS) interactive.push(...(await interactiveBench(sshd, rtt, ROUNDS)));
        process.stdout.write(interactiveTable(interactive) + '\n');
        await writeJson({ interactive });
      } else if (values.only === 'throughput') {
        const tp = await throughput(sshd, THROUGHPUT_BYTES);
        process.stdout.write(throughputLines(tp) + '\n');
        await writeJson({ throughput: tp });
      } else {
        const cli = await cliBench(sshd, ROUNDS);
        process.stdout.write(cliLine(cli) + '\n');
        await writeJson({ cli });
      }
    } finally {
      await sshd.stop();
    }
    return;
  }
  const sshd = await startSshd({ maxSessions: 20 });
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-'));
  let output;
  try {
    const { rows, skipped } = await latency(sshd, dir);
    // Right after the latency rounds: their RSS is this process's, before the other runs grow it.
    const sc = await scaleRuns();
    const durable: DurableRow[] = [];
    for (const rtt of RTTS) {
      try {
        durable.push(...(await durableBench(sshd, rtt, ROUNDS)));
      } catch (err) {
        skipped.push(`durable shells at ${rtt} ms: ${(err as Error).message}`);
      }
    }
    const interactive: InteractiveRow[] = [];
    for (const rtt of RTTS) interactive.push(...(await interactiveBench(sshd, rtt, ROUNDS)));
    const tp = await throughput(sshd, THROUGHPUT_BYTES);
    const cli = await cliBench(sshd, ROUNDS);
    const flood = await floodBench(sshd, { rtt: 50, lines: FLOOD_LINES, rounds: FLOOD_ROUNDS });
    output = { rtt_ms: RTTS, results: rows, durable, interactive, throughput: tp, scale: sc.scale, scale_large: sc.scale_large, cli, flood };
    process.stdout.write('\n' + table(rows) + '\n');
    process.stdout.write('\n' + durableTable(durable) + '\n');
    for (const s of skipped) process.stdout.write(`skipped: ${s}\n`);
    process.stdout.write('\n' + interactiveTable(interactive) + '\n');
    process.stdout.write('\n' + throughputLines(tp) + '\n');
    process.stdout.write(cliLine(cli) + '\n');
    process.stdout.write(
      `flood (seq 1 ${FLOOD_LINES} in a terminal in Chromium, 50 ms RTT, ${(flood.bytes / 1e6).toFixed(1)} MB): drawn in ${flood.ui_ms} ms (target ≤ 1500), ` +
        `frame p99 ${flood.frame_p99_ms} ms (target ≤ 50), engine peak RSS ${flood.engine_rss_mb} MB\n`,
    );
    for (const line of sc.lines) process.stdout.write(line + '\n');
  } finally {
    await sshd.stop();
    await rm(dir, { recursive: true, force: true });
  }
  await writeJson(output);
}

function cliLine(cli: CliRow): string {
  return `cli (whole processes, medians): hitch exec ${cli.hitch_exec_ms} ms, node -e '' ${cli.node_ms} ms (${(cli.hitch_exec_ms / cli.node_ms).toFixed(2)}×; target ≤ 1.3×), ssh -S ${cli.ssh_mux_ms} ms`;
}

/** The throughput part's lines: one session's stream on each path, one file's download and its upload. */
function throughputLines(tp: { method: string; mib_s: number }[]): string {
  const mib = (method: string): number => tp.find((x) => x.method === method)!.mib_s;
  const openssh = mib('openssh-mux');
  return (
    `throughput (one session, ${THROUGHPUT_BYTES / 1048576} MiB, MiB/s): ssh -S through OpenSSH's master ${openssh}, ` +
    `hitch exec ${mib('hitch-exec')} (${(mib('hitch-exec') / openssh).toFixed(2)}×), ssh -S through Hitch's socket ${mib('ssh-via-hitch')} (${(mib('ssh-via-hitch') / openssh).toFixed(2)}×); ` +
    `a channel read inside the engine's process ${mib('hitch')} (targets ≥ 1×)\n` +
    `file download (${THROUGHPUT_BYTES / 1048576} MiB, MiB/s): sftp -S through OpenSSH's master ${mib('openssh-sftp')}, ` +
    `the app's transfer ${mib('hitch-sftp')} (${(mib('hitch-sftp') / mib('openssh-sftp')).toFixed(2)}×; target ≥ 0.9×), ` +
    `hitch cp as a process of its own ${mib('hitch-cp')} (${(mib('hitch-cp') / mib('openssh-sftp')).toFixed(2)}×)\n` +
    `file upload (${THROUGHPUT_BYTES / 1048576} MiB, MiB/s): sftp -S through OpenSSH's master ${mib('openssh-sftp-upload')}, ` +
    `the app's transfer ${mib('hitch-sftp-upload')} (${(mib('hitch-sftp-upload') / mib('openssh-sftp-upload')).toFixed(2)}×)`
  );
}

async function writeJson(output: unknown): Promise<void> {
  if (!values.json) return;
  await writeFile(values.json, JSON.stringify(output, null, 2) + '\n');
  process.stdout.write(`wrote ${values.json}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);

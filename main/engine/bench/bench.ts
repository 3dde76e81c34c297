// What multiplexing saves, measured side by side: each method runs `true` on the host, the
// methods interleaved round by round. Hitch's own ways (a fresh ssh2 connection, a channel on
// the master, the channel opened ahead) against stock OpenSSH (a fresh `ssh host true`, `ssh -S`
// through an OpenSSH ControlMaster the benchmark starts itself, and through Hitch's socket).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_METHODS, type BenchMethod, type BenchReport } from '../../../preload/api';
import { interleave, ratio, summarize } from './bench-stats';
import { HitchError } from '../errors';
import type { HostMaster } from '../masters/host-master';
import type { MasterConnection } from '../masters/master';
import { expandHome } from '../paths';
import type { ResolvedHost } from '../config/ssh-config';

export { BENCH_METHODS };

export interface BenchTarget {
  hostId: string;
  host: ResolvedHost;
  master: HostMaster;
  /** The ssh config the stock client reads, and the client itself. */
  configPath: string;
  sshBinary: string;
  /** Hitch's own known_hosts, offered to the stock client too. */
  hitchKnownHosts: string;
  /** Hitch's control socket for this master, where there is one. */
  controlPath: string | null;
}

export interface BenchOptions {
  rounds: number;
  methods?: readonly BenchMethod[];
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, method: BenchMethod) => void;
}

interface Method {
  /** Gets ready; returns why the method cannot run here, or null. */
  prepare(): Promise<string | null>;
  /** One measured run of `true`. */
  once(): Promise<void>;
  cleanup(): Promise<void>;
}

/** Runs a command; resolves with its exit code and stderr (no shell, argv as given). */
function run(binary: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stderr: err.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: stderr.trim() });
    });
  });
}

/** Runs `true` on a connection and waits for its exit: what a session costs. */
async function execTrue(connection: MasterConnection, useSpare: boolean): Promise<void> {
  const channel = await connection.openSession({ kind: 'exec', command: 'true', pty: null }, { useSpare });
  await new Promise<void>((resolve) => {
    channel.resume();
    channel.once('close', () => resolve());
  });
}

function methods(t: BenchTarget): Record<BenchMethod, Method> {
  // The stock client reads the same config and trusts the same keys, and never asks anyone.
  const knownHosts = [...t.host.userKnownHostsFiles.map(expandHome), t.hitchKnownHosts].join(' ');
  const sshArgs = ['-F', t.configPath, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`];
  const primary = (): MasterConnection => {
    const c = t.master.primaryConnection;
    if (!c) throw new HitchError('not-connected', `${t.hostId} is not connected.`);
    return c;
  };
  let muxDir: string | null = null;
  let muxMaster: ReturnType<typeof spawn> | null = null;
  const muxSocket = (): string => join(muxDir!, 'mux');

  const stock = (extra: string[]): Method => ({
    async prepare() {
      const { code, stderr } = await run(t.sshBinary, [...sshArgs, ...extra, t.hostId, 'true']);
      return code === 0 ? null : `ssh ${t.hostId} true failed: ${stderr.split('\n')[0] || `exit ${code}`}`;
    },
    async once() {
      const { code, stderr } = await run(t.sshBinary, [...sshArgs, ...extra, t.hostId, 'true']);
      if (code !== 0) throw new HitchError('channel', `ssh failed: ${stderr}`);
    },
    async cleanup() {},
  });

  return {
    'fresh-ssh2': {
      async prepare() {
        if (primary().needsPerson) return 'logging in to this host needs a person (a password or code), so fresh connections cannot be timed';
        return null;
      },
      async once() {
        const connection = await t.master.standaloneConnection();
        try {
          await execTrue(connection, false);
        } finally {
          connection.close();
        }
      },
      async cleanup() {},
    },
    'hitch-channel': {
      prepare: async () => (primary() ? null : 'not connected'),
      once: () => execTrue(primary(), false),
      async cleanup() {},
    },
    'hitch-spare': {
      async prepare() {
        return (await primary().waitForSpare()) ? null : 'no channel can be opened ahead here (disabled, or MaxSessions leaves no room)';
      },
      async once() {
        const c = primary();
        if (!(await c.waitForSpare())) throw new HitchError('channel', 'No channel opened ahead is available.');
        await execTrue(c, true);
      },
      async cleanup() {},
    },
    'openssh-fresh': stock(['-o', 'ControlMaster=no', '-o', 'ControlPath=none']),
    'openssh-mux': {
      async prepare() {
        muxDir = await mkdtemp(join(tmpdir(), 'hitch-bench-'));
        muxMaster = spawn(t.sshBinary, [...sshArgs, '-M', '-S', muxSocket(), '-o', 'ControlPersist=no', '-N', t.hostId], { stdio: 'ignore' });
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline) {
          if (muxMaster.exitCode !== null) return `the OpenSSH master exited (${muxMaster.exitCode}); does \`ssh ${t.hostId}\` work without a password?`;
          if ((await run(t.sshBinary, ['-S', muxSocket(), '-O', 'check', t.hostId])).code === 0) return null;
          await new Promise((r) => setTimeout(r, 50));
        }
        return 'the OpenSSH master did not come up within 20 s';
      },
      async once() {
        const { code, stderr } = await run(t.sshBinary, [...sshArgs, '-S', muxSocket(), '-o', 'ControlMaster=no', t.hostId, 'true']);
        if (code !== 0) throw new HitchError('channel', `ssh -S failed: ${stderr}`);
      },
      async cleanup() {
        if (muxDir) await run(t.sshBinary, ['-S', muxSocket(), '-O', 'exit', t.hostId]);
        muxMaster?.kill();
        if (muxDir) await rm(muxDir, { recursive: true, force: true });
        muxDir = null;
      },
    },
    'openssh-via-hitch': {
      async prepare() {
        if (!t.controlPath) return "Hitch's control socket is not available for this master";
        return stock(['-S', t.controlPath, '-o', 'ControlMaster=no']).prepare();
      },
      once: () => stock(['-S', t.controlPath!, '-o', 'ControlMaster=no']).once(),
      async cleanup() {},
    },
  };
}

/** Measures every method `rounds` times, interleaved; methods that cannot run say why. */
export async function runBench(target: BenchTarget, options: BenchOptions): Promise<BenchReport> {
  const all = methods(target);
  const wanted = options.methods ?? BENCH_METHODS;
  const ready: BenchMethod[] = [];
  const skipped: BenchReport['skipped'] = [];
  const samples = new Map<BenchMethod, number[]>();
  try {
    for (const m of wanted) {
      const why = await all[m].prepare().catch((err: Error) => err.message);
      if (why) skipped.push({ method: m, reason: why });
      else {
        ready.push(m);
        samples.set(m, []);
      }
    }
    const order = interleave(ready, options.rounds);
    for (let i = 0; i < order.length; i++) {
      if (options.signal?.aborted) throw new HitchError('cancelled', 'Benchmark cancelled.');
      const m = order[i]!;
      options.onProgress?.(i, order.length, m);
      const started = performance.now();
      await all[m].once();
      samples.get(m)!.push(performance.now() - started);
    }
    options.onProgress?.(order.length, order.length, ready.at(-1) ?? 'hitch-channel');
  } finally {
    for (const m of wanted) await all[m].cleanup().catch(() => undefined);
  }
  const baseline = samples.get('fresh-ssh2') ?? samples.get('openssh-fresh');
  const baselineMedian = baseline ? summarize(baseline).median_ms : Number.NaN;
  return {
    hostId: target.hostId,
    at: Date.now(),
    rounds: options.rounds,
    results: ready.map((method) => {
      const s = summarize(samples.get(method)!);
      return { method, ...s, ratio: ratio(s.median_ms, baselineMedian) };
    }),
    skipped,
  };
}

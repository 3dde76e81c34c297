// What a script pays for each `hitch exec HOST -- true` (issue #14), as a whole process from
// spawn to exit, interleaved round by round with Node's own start (`node -e ''`, the floor
// for a Node command) and `ssh -S` through OpenSSH's own master: the engine is already
// running and its master ready, as when a script calls hitch in a loop.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localApi } from '../main/api/connection';
import { createRouter } from '../main/api/router';
import { summarize } from '../main/engine/bench/bench-stats';
import { serveEngineSocket } from '../main/transport/engine-socket';
import { CLI, ensureBuilt } from '../tests/fixtures/built';
import { testEngine } from '../tests/fixtures/engine';
import type { Sshd } from '../tests/fixtures/sshd';

export interface CliRow {
  hitch_exec_ms: number;
  node_ms: number;
  ssh_mux_ms: number;
}

/** Milliseconds from spawning `argv` to its exit; rejects unless it exits 0. */
function timed(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.trim()}`))));
  });
}

/** Starts an OpenSSH ControlMaster for `alias`; resolves once `ssh -O check` says it is up. */
export async function opensshMaster(configPath: string, alias: string, dir: string): Promise<{ sshArgs: string[]; socket: string; stop(): void }> {
  const sshArgs = ['-F', configPath, '-o', 'BatchMode=yes'];
  const sock = join(dir, 'mux');
  const master = spawn('ssh', [...sshArgs, '-M', '-S', sock, '-N', alias], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    if ((await new Promise<number | null>((r) => spawn('ssh', ['-S', sock, '-O', 'check', alias], { stdio: 'ignore' }).on('close', r))) === 0) break;
  }
  return {
    sshArgs: [...sshArgs, '-S', sock],
    socket: sock,
    stop() {
      spawn('ssh', ['-S', sock, '-O', 'exit', alias], { stdio: 'ignore' });
      master.kill();
    },
  };
}

export async function cliBench(sshd: Sshd, rounds: number): Promise<CliRow> {
  await ensureBuilt();
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-cli-'));
  // As `hitch daemon` runs it: control sockets served, ready masters linked for `hitch exec`.
  const t = await testEngine(sshd.clientConfig('bench'), { processTrees: false });
  const runtimeDir = join(dir, 'run');
  const server = await serveEngineSocket({ api: localApi(createRouter(t.engine, t.engine.options.log)), runtimeDir, log: t.engine.options.log, masters: t.engine });
  const openssh = await opensshMaster(t.configPath, 'bench', dir);
  const env = { ...process.env, HITCH_RUNTIME_DIR: runtimeDir };
  try {
    process.stderr.write(`cli: ${rounds} rounds of hitch exec, node -e '' and ssh -S, each a whole process, interleaved…\n`);
    await t.engine.connect('bench');
    const runs = {
      hitch_exec_ms: [process.execPath, CLI, 'exec', 'bench', '--', 'true'],
      node_ms: [process.execPath, '-e', ''],
      ssh_mux_ms: ['ssh', ...openssh.sshArgs, 'bench', 'true'],
    };
    const samples: Record<keyof CliRow, number[]> = { hitch_exec_ms: [], node_ms: [], ssh_mux_ms: [] };
    // One unmeasured run of each first: files read once are cached for all.
    for (const argv of Object.values(runs)) await timed(argv, env);
    for (let round = 0; round < rounds; round++) {
      for (const [key, argv] of Object.entries(runs) as [keyof CliRow, string[]][]) samples[key].push(await timed(argv, env));
    }
    return {
      hitch_exec_ms: summarize(samples.hitch_exec_ms).median_ms,
      node_ms: summarize(samples.node_ms).median_ms,
      ssh_mux_ms: summarize(samples.ssh_mux_ms).median_ms,
    };
  } finally {
    openssh.stop();
    await server.close();
    await t.close();
    await rm(dir, { recursive: true, force: true });
  }
}

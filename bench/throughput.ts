// One session's throughput on the paths users take (issue #14), side by side, interleaved round
// by round, 256 MiB of `head -c` each, read by a process as fast as it comes:
// - openssh-mux: `ssh -S` through OpenSSH's own ControlMaster (the yardstick; also reported
//   as `openssh`, its name in earlier reports);
// - hitch-exec: `hitch exec HOST -- head -c …`, a process of its own, through the engine socket;
// - ssh-via-hitch: stock `ssh -S` through Hitch's control socket;
// - hitch: a channel read inside the engine's own process (no router, transport or encoding):
//   what ssh2 itself manages, kept for comparison with earlier reports;
// and one file's download (issue 15), the same size, written to a local file:
// - openssh-sftp: `sftp -S` through OpenSSH's own ControlMaster, `get` (the yardstick);
// - hitch-sftp: `hitch cp HOST:FILE LOCAL`, the engine's pipelined SFTP on its master.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localApi } from '../main/api/connection';
import { createRouter } from '../main/api/router';
import { summarize } from '../main/engine/bench/bench-stats';
import { serveEngineSocket } from '../main/transport/engine-socket';
import { CLI, ensureBuilt } from '../tests/fixtures/built';
import { testEngine } from '../tests/fixtures/engine';
import type { Sshd } from '../tests/fixtures/sshd';
import { opensshMaster } from './cli';

/** Resolves once `stream` has given exactly `expected` bytes and ended. */
function drain(stream: NodeJS.ReadableStream, expected: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    stream.on('data', (d: Buffer) => (got += d.length));
    stream.on('error', reject);
    stream.on('end', () => (got === expected ? resolve(got) : reject(new Error(`got ${got} of ${expected} bytes`))));
  });
}

export async function throughput(sshd: Sshd, bytes: number): Promise<{ method: string; mib_s: number }[]> {
  await ensureBuilt();
  const command = `head -c ${bytes} /dev/zero`;
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-tp-'));
  const t = await testEngine(sshd.clientConfig('bench'), { processTrees: false });
  const runtimeDir = join(dir, 'run');
  const server = await serveEngineSocket({ api: localApi(createRouter(t.engine, t.engine.options.log)), runtimeDir, log: t.engine.options.log });
  const mux = await opensshMaster(t.configPath, 'bench', dir);
  const remoteFile = `/tmp/hitch-bench-${randomBytes(6).toString('hex')}.bin`;
  try {
    process.stderr.write(`throughput: ${bytes / 1048576} MiB through one session, each path, three rounds…\n`);
    const master = await t.engine.connect('bench');
    if (!master.controlPath) throw new Error('the master has no control socket');
    const viaProcess = (argv: string[]) => async (): Promise<void> => {
      const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, HITCH_RUNTIME_DIR: runtimeDir }, stdio: ['ignore', 'pipe', 'ignore'] });
      await drain(child.stdout, bytes);
    };
    // The file both downloads fetch, made on the host (its name fixed here, never typed by anyone).
    const made = await t.engine.execChannel('bench', `head -c ${bytes} /dev/zero > ${remoteFile}`);
    made.resume();
    made.stderr.resume();
    await new Promise((r) => made.once('close', r));
    const localFile = join(dir, 'download.bin');
    const batch = join(dir, 'sftp-batch');
    await writeFile(batch, `get ${remoteFile} ${localFile}\n`);
    /** Runs argv to its end; the downloaded file must then have every byte. */
    const download = (argv: string[], env: NodeJS.ProcessEnv = process.env) => async (): Promise<void> => {
      await unlink(localFile).catch(() => undefined);
      const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const status = await new Promise<number | null>((r) => child.once('close', r));
      const got = (await stat(localFile).catch(() => null))?.size ?? 0;
      if (status !== 0 || got !== bytes) throw new Error(`${argv.slice(0, 3).join(' ')}… exited ${status} with ${got} of ${bytes} bytes: ${stderr.trim()}`);
    };
    const methods: Record<string, () => Promise<void>> = {
      'openssh-mux': viaProcess(['ssh', ...mux.sshArgs, 'bench', command]),
      'hitch-exec': viaProcess([process.execPath, CLI, 'exec', 'bench', '--', command]),
      'ssh-via-hitch': viaProcess(['ssh', '-F', t.configPath, '-S', master.controlPath, 'bench', command]),
      hitch: async () => {
        const channel = await t.engine.execChannel('bench', command);
        channel.stderr.resume();
        await drain(channel, bytes);
      },
      // sftp's own -S names the ssh program: the master's socket goes in as ControlPath.
      'openssh-sftp': download(['sftp', '-q', '-F', t.configPath, '-o', 'BatchMode=yes', '-o', `ControlPath=${mux.socket}`, '-o', 'ControlMaster=no', '-b', batch, 'bench']),
      'hitch-sftp': download([process.execPath, CLI, 'cp', '--force', `bench:${remoteFile}`, localFile], { ...process.env, HITCH_RUNTIME_DIR: runtimeDir }),
    };
    const samples = new Map<string, number[]>(Object.keys(methods).map((m) => [m, []]));
    for (let round = 0; round < 3; round++) {
      for (const [method, once] of Object.entries(methods)) {
        const started = performance.now();
        await once();
        samples.get(method)!.push(bytes / 1048576 / ((performance.now() - started) / 1000));
      }
    }
    const rate = (method: string): number => Math.round(summarize(samples.get(method)!).median_ms);
    return [
      { method: 'hitch', mib_s: rate('hitch') },
      { method: 'openssh', mib_s: rate('openssh-mux') },
      { method: 'hitch-exec', mib_s: rate('hitch-exec') },
      { method: 'ssh-via-hitch', mib_s: rate('ssh-via-hitch') },
      { method: 'openssh-mux', mib_s: rate('openssh-mux') },
      { method: 'openssh-sftp', mib_s: rate('openssh-sftp') },
      { method: 'hitch-sftp', mib_s: rate('hitch-sftp') },
    ];
  } finally {
    await t.engine
      .execChannel('bench', `rm -f ${remoteFile}`)
      .then((c) => new Promise((r) => (c.resume(), c.stderr.resume(), c.once('close', r))))
      .catch(() => undefined);
    mux.stop();
    await server.close();
    await t.close();
    await rm(dir, { recursive: true, force: true });
  }
}

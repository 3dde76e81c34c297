// One session's throughput on the paths users take (issue #14), side by side, interleaved round
// by round, 256 MiB of `head -c` each, read by a process as fast as it comes (`wc -c`):
// - openssh-mux: `ssh -S` through OpenSSH's own ControlMaster (the yardstick; also reported
//   as `openssh`, its name in earlier reports);
// - hitch-exec: `hitch exec HOST -- head -c …`, a process of its own, through the engine socket;
// - ssh-via-hitch: stock `ssh -S` through Hitch's control socket;
// Every path but `hitch` goes through an engine in a process of its own (`hitch daemon`), as in
// the app, where the engine runs in Electron's main process or the web host: not in this
// benchmark's process, which by then has carried the scale runs' thousand sessions.
// - hitch: a channel read by an engine inside this benchmark's process (no router, transport or
//   encoding): what ssh2 itself manages, kept for comparison with earlier reports;
// and one file's download (issue 15), the same size, written to a local file:
// - openssh-sftp: `sftp -S` through OpenSSH's own ControlMaster, `get`, a process of its own
//   (the yardstick);
// - hitch-sftp: the app's transfer queue, as the window asks for it: `transfer.start` by a
//   client of the engine socket, until its `transfer.changed` says done (the engine's
//   pipelined SFTP on its master);
// - hitch-cp: `hitch cp HOST:FILE LOCAL`, the same transfer asked for by a process of its own
//   (Node's start, ~0.1 s here, included);
// and one file's upload, the same size, from a local file to a file on the host:
// - openssh-sftp-upload: `sftp -S` through OpenSSH's own master, `put` (the yardstick);
// - hitch-sftp-upload: the app's transfer queue, `transfer.start` with direction `upload`.
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINE_NODE_FLAGS } from '../main/engine/node-flags';
import { summarize } from '../main/engine/bench/bench-stats';
import { connectEngineSocket, engineSocketPath, type EngineConnection } from '../main/transport/engine-socket';
import type { MasterView, TransferView } from '../preload/api';
import { CLI, ensureBuilt, hitchEnv } from '../tests/fixtures/built';
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

/** Rounds, interleaved: the median of each path is reported (this machine is shared and noisy). */
const ROUNDS = 5;

export async function throughput(sshd: Sshd, bytes: number): Promise<{ method: string; mib_s: number }[]> {
  await ensureBuilt();
  const command = `head -c ${bytes} /dev/zero`;
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-tp-'));
  const t = await testEngine(sshd.clientConfig('bench'), { processTrees: false });
  await writeFile(join(dir, 'ssh_config'), sshd.clientConfig('bench'));
  const env = hitchEnv(dir);
  const runtimeDir = env.HITCH_RUNTIME_DIR!;
  let daemon: ChildProcess | null = null;
  const mux = await opensshMaster(t.configPath, 'bench', dir);
  const remoteFile = `/tmp/hitch-bench-${randomBytes(6).toString('hex')}.bin`;
  let app: EngineConnection | null = null;
  try {
    process.stderr.write(`throughput: ${bytes / 1048576} MiB through one session, each path, ${ROUNDS} rounds…\n`);
    daemon = await startDaemon(env);
    // The window's connection to the engine, held for every round as the window holds it.
    app = await connectEngineSocket(engineSocketPath(runtimeDir));
    const connected = await app.call('master.connect', { hostId: 'bench' });
    if (!connected.ok) throw new Error(`master.connect: ${connected.error.message}`);
    const master = connected.result as MasterView;
    await t.engine.connect('bench');
    if (!master.controlPath) throw new Error('the master has no control socket');
    const viaProcess = (argv: string[]) => async (): Promise<void> => {
      // Read by a process of its own (`wc -c`), never by this one: by the throughput part the
      // benchmark's process has carried the scale runs' thousands of sessions, and reading
      // 256 MiB itself it was every path's bottleneck (each twice as slow as in a run of the part
      // alone, and their ratios squeezed towards 1). The pipe goes from the command to wc.
      const reader = spawn('wc', ['-c'], { stdio: ['pipe', 'pipe', 'ignore'] });
      const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', reader.stdin!, 'ignore'] });
      reader.stdin!.destroy(); // this process's end of the pipe: wc sees its end when the command's closes
      let counted = '';
      reader.stdout!.setEncoding('utf8').on('data', (d: string) => (counted += d));
      await Promise.all([new Promise((r) => child.once('close', r)), new Promise((r) => reader.once('close', r))]);
      if (Number(counted.trim()) !== bytes) throw new Error(`${argv[0]} ${argv[1] ?? ''}… gave ${counted.trim() || 'nothing'} of ${bytes} bytes`);
    };
    // The file both downloads fetch, made on the host (its name fixed here, never typed by anyone).
    const made = await t.engine.execChannel('bench', `head -c ${bytes} /dev/zero > ${remoteFile}`);
    made.resume();
    made.stderr.resume();
    await new Promise((r) => made.once('close', r));
    const localFile = join(dir, 'download.bin');
    const batch = join(dir, 'sftp-batch');
    await writeFile(batch, `get ${remoteFile} ${localFile}\n`);
    // What both uploads send, and where (a name of its own on the host, replaced each round).
    const uploadFile = join(dir, 'upload.bin');
    await writeFile(uploadFile, Buffer.alloc(bytes));
    const remoteUpload = `${remoteFile}.up`;
    const putBatch = join(dir, 'sftp-put-batch');
    await writeFile(putBatch, `put ${uploadFile} ${remoteUpload}\n`);
    /** Runs argv to its end: its exit status and what it wrote to stderr. */
    const run = async (argv: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> => {
      const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      return { status: await new Promise<number | null>((r) => child.once('close', r)), stderr };
    };
    /** Runs argv to its end; the downloaded file must then have every byte. */
    const download = (argv: string[], env: NodeJS.ProcessEnv = process.env) => async (): Promise<void> => {
      const { status, stderr } = await run(argv, env);
      const got = (await stat(localFile).catch(() => null))?.size ?? 0;
      if (status !== 0 || got !== bytes) throw new Error(`${argv.slice(0, 3).join(' ')}… exited ${status} with ${got} of ${bytes} bytes: ${stderr.trim()}`);
    };
    /** Runs argv (sftp's `put`) to its end: it must succeed. */
    const upload = (argv: string[]) => async (): Promise<void> => {
      const { status, stderr } = await run(argv, process.env);
      if (status !== 0) throw new Error(`${argv.slice(0, 3).join(' ')}… exited ${status}: ${stderr.trim()}`);
    };
    const watching = await app.call('state.get', { watch: true }); // the window watches: transfer.changed comes
    if (!watching.ok) throw new Error(`state.get: ${watching.error.message}`);
    const viaApp = (direction: 'download' | 'upload') => async (): Promise<void> => {
      let ended: (view: TransferView) => void = () => undefined;
      const end = new Promise<TransferView>((r) => (ended = r));
      let id: string | null = null;
      const early: TransferView[] = [];
      const off = app!.onEvent((e) => {
        if (e.event !== 'transfer.changed') return;
        const view = e.payload;
        if (id === null) early.push(view);
        else if (view.id === id && (view.state === 'done' || view.state === 'failed' || view.state === 'cancelled')) ended(view);
      });
      try {
        const paths = direction === 'download' ? { localPath: localFile, remotePath: remoteFile } : { localPath: uploadFile, remotePath: remoteUpload };
        const reply = await app!.call('transfer.start', { hostId: 'bench', direction, ...paths, ifExists: 'replace' });
        if (!reply.ok) throw new Error(`transfer.start: ${reply.error.message}`);
        id = (reply.result as TransferView).id;
        for (const view of early) if (view.id === id && view.state === 'done') ended(view);
        const view = await end;
        if (view.state !== 'done' || view.done !== bytes) throw new Error(`the transfer ended ${view.state} after ${view.done} bytes: ${view.error}`);
        if (direction === 'download' && (await stat(localFile)).size !== bytes) throw new Error(`the download left ${localFile} short`);
      } finally {
        off();
      }
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
      'hitch-sftp': viaApp('download'),
      'hitch-cp': download([process.execPath, CLI, 'cp', '--force', `bench:${remoteFile}`, localFile], env),
      'openssh-sftp-upload': upload(['sftp', '-q', '-F', t.configPath, '-o', 'BatchMode=yes', '-o', `ControlPath=${mux.socket}`, '-o', 'ControlMaster=no', '-b', putBatch, 'bench']),
      'hitch-sftp-upload': viaApp('upload'),
    };
    const samples = new Map<string, number[]>(Object.keys(methods).map((m) => [m, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [method, once] of Object.entries(methods)) {
        // Each starts from the same disk: no file, and nothing of the last one left to write
        // back (the kernel writing 256 MiB out while the next path runs would slow that path).
        await unlink(localFile).catch(() => undefined);
        await new Promise((r) => spawn('sync', { stdio: 'ignore' }).once('close', r));
        const started = performance.now();
        await once();
        samples.get(method)!.push(bytes / 1048576 / ((performance.now() - started) / 1000));
      }
    }
    // Every round on stderr: how unsteady this machine was shows beside the medians.
    for (const [m, xs] of samples) process.stderr.write(`  ${m} MiB/s by round: ${xs.map((x) => x.toFixed(0)).join(" ")}\n`);
    const rate = (method: string): number => Math.round(summarize(samples.get(method)!).median_ms);
    return [
      { method: 'hitch', mib_s: rate('hitch') },
      { method: 'openssh', mib_s: rate('openssh-mux') },
      { method: 'hitch-exec', mib_s: rate('hitch-exec') },
      { method: 'ssh-via-hitch', mib_s: rate('ssh-via-hitch') },
      { method: 'openssh-mux', mib_s: rate('openssh-mux') },
      { method: 'openssh-sftp', mib_s: rate('openssh-sftp') },
      { method: 'hitch-sftp', mib_s: rate('hitch-sftp') },
      { method: 'hitch-cp', mib_s: rate('hitch-cp') },
      { method: 'openssh-sftp-upload', mib_s: rate('openssh-sftp-upload') },
      { method: 'hitch-sftp-upload', mib_s: rate('hitch-sftp-upload') },
    ];
  } finally {
    await t.engine
      .execChannel('bench', `rm -f ${remoteFile} ${remoteFile}.up`)
      .then((c) => new Promise((r) => (c.resume(), c.stderr.resume(), c.once('close', r))))
      .catch(() => undefined);
    mux.stop();
    app?.close();
    if (daemon) await stopDaemon(daemon);
    await t.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `hitch daemon`: the engine in a process of its own, serving the engine socket in env's
 * runtime dir, with the V8 flags `hitch --start` gives it (ENGINE_NODE_FLAGS).
 */
async function startDaemon(env: Record<string, string>): Promise<ChildProcess> {
  const daemon = spawn(process.execPath, [...ENGINE_NODE_FLAGS, CLI, 'daemon', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  daemon.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => (daemon.kill(), reject(new Error(`hitch daemon did not start within 30 s: ${stderr.trim()}`))), 30_000);
    daemon.stdout!.setEncoding('utf8').once('data', () => (clearTimeout(timer), resolve())); // its first line: the socket it serves
    daemon.once('exit', (code) => (clearTimeout(timer), reject(new Error(`hitch daemon exited with ${code}: ${stderr.trim()}`))));
  });
  daemon.stdout!.resume();
  return daemon;
}

async function stopDaemon(daemon: ChildProcess): Promise<void> {
  if (daemon.exitCode !== null || daemon.signalCode !== null) return;
  const exited = new Promise((r) => daemon.once('exit', r));
  daemon.kill('SIGTERM');
  await exited;
}

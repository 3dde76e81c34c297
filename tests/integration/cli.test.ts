// The `hitch` command, run as a real process (out/main/cli.js) against a real sshd, the way a
// shell script drives it: a headless engine started with `hitch daemon`, then every command
// end to end, exit statuses and signals passed on, bytes kept intact, `--json` outputs
// checked against their schemas, and the engine socket refusing what it must refuse.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, link, mkdtemp, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  benchOutputSchema,
  connectOutputSchema,
  daemonOutputSchema,
  disconnectOutputSchema,
  execOutputSchema,
  killOutputSchema,
  lsOutputSchema,
  psOutputSchema,
  socketOutputSchema,
} from '../../main/cli/schemas';
import { CLI, ensureBuilt, hitchEnv, WEB } from '../fixtures/built';
import { startSshd, TEST_PASSWORD, TEST_USER, type Sshd } from '../fixtures/sshd';

const run = promisify(execFile);
interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** stdout as text. */
  out: string;
}

interface HitchOptions {
  env?: Record<string, string>;
  /** Written to stdin, then stdin is closed; without it stdin is /dev/null. */
  input?: Buffer | string;
}

function started(child: ChildProcess): Promise<Ran> {
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => stdout.push(d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    child.once('close', (status, signal) => {
      const out = Buffer.concat(stdout);
      resolve({ status, signal, stdout: out, stderr, out: out.toString('utf8') });
    });
  });
}

describe('the hitch command', () => {
  let sshd: Sshd;
  let passwordSshd: Sshd;
  let dir: string;
  let env: Record<string, string>;
  let daemon: ChildProcess;
  let socketPath: string;
  const background: ChildProcess[] = [];

  const hitch = (args: string[], opts: HitchOptions = {}): Promise<Ran> => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...env, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    return started(child);
  };
  /** A command left running (a job), and its outcome later. */
  const hitchInBackground = (args: string[]): { child: ChildProcess; done: Promise<Ran> } => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    background.push(child);
    return { child, done: started(child) };
  };
  const json = async <T>(schema: { parse(v: unknown): T }, args: string[]): Promise<T> => {
    const r = await hitch([...args, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return schema.parse(JSON.parse(r.out));
  };
  const processes = async (): Promise<{ pid: number; command: string; sessionId: string | null; kind: string }[]> =>
    (await json(psOutputSchema, ['ps', 'box'])).groups.flatMap((g) => g.processes.map((p) => ({ ...p, kind: g.kind })));

  beforeAll(async () => {
    await ensureBuilt();
    [sshd, passwordSshd] = await Promise.all([startSshd(), startSshd({ extraConfig: ['PasswordAuthentication yes', 'PubkeyAuthentication no'] })]);
    dir = await mkdtemp(join(tmpdir(), 'hitch-cli-'));
    const passwordHost = passwordSshd.clientConfig('pw').replace(`IdentityFile ${passwordSshd.clientKey}`, 'IdentityFile /nonexistent/id_ed25519');
    await writeFile(join(dir, 'ssh_config'), sshd.clientConfig('box') + passwordHost);
    env = hitchEnv(dir);
    socketPath = join(dir, 'run', 'engine.sock');
  }, 60_000);

  afterAll(async () => {
    for (const child of [...background, daemon]) if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all([sshd?.stop(), passwordSshd?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('says that no engine runs, and how to start one', async () => {
    const r = await hitch(['ls']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^hitch: no Hitch engine is running \(nothing serves .*engine\.sock\)\. Start one with `hitch daemon`.*--start.*\n$/);
    expect(r.stderr.split('\n')).toHaveLength(2); // one line
    expect((await hitch(['exec', 'box', '--', 'true'])).status).toBe(255);
  });

  it('starts a headless engine with hitch daemon, on a private socket, and refuses a second one', async () => {
    daemon = spawn(process.execPath, [CLI, 'daemon', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      daemon.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      daemon.once('exit', (code) => reject(new Error(`daemon exited with ${code}`)));
    });
    expect(daemonOutputSchema.parse(JSON.parse(line))).toEqual({ socket: socketPath, pid: daemon.pid });
    expect((await stat(join(dir, 'run'))).mode & 0o777).toBe(0o700);
    const sock = await stat(socketPath);
    expect(sock.isSocket()).toBe(true);
    expect(sock.mode & 0o777).toBe(0o600);

    const second = await hitch(['daemon']);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/^hitch: an engine is already running \(it serves .*\); not starting a second one/);
    expect(daemon.exitCode).toBeNull();
    expect((await hitch(['ls'])).status).toBe(0); // the first still serves
  });

  it('lists hosts, connects, shows the master with its sessions, and disconnects', async () => {
    const before = await json(lsOutputSchema, ['ls']);
    expect(before.hosts.map((h) => h.id)).toEqual(['box', 'pw']);
    expect(before.masters).toEqual([]);

    const connected = await json(connectOutputSchema, ['connect', 'box']);
    expect(connected).toMatchObject({ host: 'box', master: { state: 'ready', authMethod: 'publickey', sessions: 0 } });
    const after = await json(lsOutputSchema, ['ls']);
    expect(after.masters).toEqual([expect.objectContaining({ id: connected.master.id, state: 'ready', connections: 1 })]);
    const text = await hitch(['ls']);
    expect(text.out).toMatch(new RegExp(`${connected.master.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+ready\\s+sessions 0/\\?`));

    expect(await json(disconnectOutputSchema, ['disconnect', 'box'])).toEqual({ host: 'box', masterId: connected.master.id, disconnected: true });
    expect((await json(lsOutputSchema, ['ls'])).masters[0]?.state).toBe('closed');
    expect((await hitch(['connect', 'box'])).out).toMatch(/^box: ready \(/);
    expect((await hitch(['connect', 'nosuch'])).stderr).toMatch(/^hitch: no host "nosuch"/);
  });

  it('runs a command over the master: stdout and stderr apart, the exit status passed on', async () => {
    const logins = await sshd.acceptedLogins();
    const r = await hitch(['exec', 'box', '--', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ status: 3, out: 'out\n', stderr: 'err\n' });
    // Words are joined for the remote shell, as ssh does.
    expect((await hitch(['exec', 'box', '--', 'echo', 'a', '"b  c"'])).out).toBe('a b  c\n');
    expect(await sshd.acceptedLogins()).toBe(logins); // no login of their own: they ride on the master

    const j = await hitch(['exec', 'box', '--json', '--', 'echo hi; echo oops >&2; exit 4']);
    expect(j).toMatchObject({ status: 4, stderr: '' });
    expect(execOutputSchema.parse(JSON.parse(j.out))).toMatchObject({ host: 'box', exitCode: 4, exitSignal: null, status: 4, stdout: 'hi\n', stderr: 'oops\n' });
    // Finished sessions are removed from the engine.
    expect((await json(lsOutputSchema, ['ls'])).sessions).toEqual([]);
  });

  it("runs a command on a ready master straight through the link the engine keeps, and only through this user's own", async () => {
    const masterLink = join(dir, 'run', 'masters', 'box');
    expect((await hitch(['connect', 'box'])).status).toBe(0);
    const controlPath = (await hitch(['socket', 'box'])).out.trim();
    await expect.poll(() => readlink(masterLink).catch(() => null)).toBe(controlPath);

    // With the engine socket out of the way, only the link can carry the command.
    await rename(socketPath, `${socketPath}.aside`);
    const fake = createServer();
    let fakeConnections = 0;
    fake.on('connection', (c) => (fakeConnections++, c.destroy()));
    try {
      expect(await hitch(['exec', 'box', '--', 'echo straight; echo on >&2; exit 7'], { input: 'x' })).toMatchObject({ status: 7, out: 'straight\n', stderr: 'on\n' });

      // Its directory open to others: not used (and the engine socket is away, so nothing runs).
      await chmod(dirname(masterLink), 0o755);
      const open = await hitch(['exec', 'box', '--', 'echo must not run']);
      await chmod(dirname(masterLink), 0o700);
      expect(open).toMatchObject({ status: 255, out: '' });
      expect(open.stderr).toMatch(/^hitch: no Hitch engine is running/);

      // A socket of another user in its place gets nothing.
      const stranger = join(dir, 'stranger.sock');
      await new Promise<void>((ok) => fake.listen(stranger, ok));
      const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }));
      await chown(stranger, uid, uid);
      await unlink(masterLink);
      await symlink(stranger, masterLink);
      const strange = await hitch(['exec', 'box', '--', 'echo must not run']);
      expect(strange).toMatchObject({ status: 255, out: '' });
      expect(fakeConnections).toBe(0);
    } finally {
      fake.close();
      await rm(masterLink, { force: true });
      await symlink(controlPath, masterLink); // as the engine left it (it rewrites a link only on a change)
      await rename(`${socketPath}.aside`, socketPath);
    }

    // Once the master is down the link goes; the command then asks the engine, which connects.
    expect((await hitch(['disconnect', 'box'])).status).toBe(0);
    await expect.poll(() => readlink(masterLink).catch(() => null)).toBeNull();
    expect(await hitch(['exec', 'box', '--', 'echo back'])).toMatchObject({ status: 0, out: 'back\n' });
    await expect.poll(() => readlink(masterLink).catch(() => null)).toBe(controlPath);
  });

  it('exits 128+n when the remote command dies of signal n', async () => {
    expect((await hitch(['exec', 'box', '--', 'kill -TERM $$'])).status).toBe(143);
    expect((await hitch(['exec', 'box', '--', 'kill -KILL $$'])).status).toBe(137);
  });

  it('keeps every byte of a large output read slowly: the command waits, nothing is dropped', async () => {
    // 100 MB, and a reader that stops for 3 s at first: more than the engine would hold for a
    // client (64 MB) comes meanwhile unless flow control holds the command back.
    const bytes = 100_000_000;
    const child = spawn(process.execPath, [CLI, 'exec', 'box', '--', `head -c ${bytes} /dev/zero`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    background.push(child);
    let got = 0;
    child.stdout!.pause();
    const exited = new Promise<number | null>((r) => child.once('close', r));
    await new Promise((r) => setTimeout(r, 3_000));
    child.stdout!.on('data', (d: Buffer) => (got += d.length));
    child.stdout!.resume();
    expect(await exited).toBe(0);
    expect(got).toBe(bytes);
  }, 60_000);

  it("runs the command through the engine socket when the master's control socket cannot be used", async () => {
    // Normally hitch exec hands its descriptors to the master's control socket, as ssh -S does.
    const socket = (await hitch(['socket', 'box'])).out.trim();
    expect(socket).not.toBe('');
    await rename(socket, `${socket}.aside`);
    try {
      const r = await hitch(['exec', 'box', '--', 'echo through the engine; echo too >&2; exit 5'], { input: 'x\n' });
      expect(r).toMatchObject({ status: 5, out: 'through the engine\n', stderr: 'too\n' });
    } finally {
      await rename(`${socket}.aside`, socket);
    }
  });

  it('ends the remote command with SIGPIPE when the reader of its output goes away, like a pipeline', async () => {
    // `yes` never ends on its own: only SIGPIPE on the host stops it, and hitch reports 128 + 13.
    const r = await run('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" exec box -- yes | head -n 1`], { env, timeout: 20_000 }).then(
      (out) => ({ status: 0, out: out.stdout }),
      (err: { code?: number; stdout?: string }) => ({ status: err.code, out: err.stdout }),
    );
    expect(r).toEqual({ status: 141, out: 'y\n' });
  });

  it('passes stdin through and forwards its end', async () => {
    expect((await hitch(['exec', 'box', '--', 'wc -l'], { input: 'a\nb\nc\n' })).out.trim()).toBe('3');
    expect((await hitch(['exec', 'box', '--', 'cat'], { input: '' })).status).toBe(0);
  });

  it('keeps binary data intact in both directions', async () => {
    const down = await hitch(['exec', 'box', '--', 'f=$(mktemp); head -c 100000 /dev/urandom > $f; sha256sum < $f >&2; cat $f; rm $f']);
    expect(down.status).toBe(0);
    expect(down.stdout).toHaveLength(100000);
    expect(down.stderr.split(' ')[0]).toBe(createHash('sha256').update(down.stdout).digest('hex'));

    const bytes = randomBytes(100000);
    const up = await hitch(['exec', 'box', '--', 'sha256sum'], { input: bytes });
    expect(up.out.split(' ')[0]).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('hangs the remote command up when hitch exec is interrupted or killed', async () => {
    const running = async (command: string): Promise<boolean> => (await processes()).some((p) => p.command === command);
    const interrupted = hitchInBackground(['exec', 'box', '--', 'sleep 611']);
    await expect.poll(() => running('sleep 611'), { timeout: 10_000 }).toBe(true);
    interrupted.child.kill('SIGTERM');
    expect((await interrupted.done).status).toBe(143);
    await expect.poll(() => running('sleep 611'), { timeout: 5_000 }).toBe(false);

    // Killed outright, hitch cannot say goodbye: the engine notices its connection close.
    const killed = hitchInBackground(['exec', 'box', '--', 'sleep 612']);
    await expect.poll(() => running('sleep 612'), { timeout: 10_000 }).toBe(true);
    killed.child.kill('SIGKILL');
    await killed.done;
    await expect.poll(() => running('sleep 612'), { timeout: 5_000 }).toBe(false);
  });

  it('finds top with hitch ps, grouped under its session, and stops it with hitch kill', async () => {
    const job = hitchInBackground(['exec', 'box', '--', 'top -b -d 1 > /dev/null']);
    await expect.poll(async () => (await processes()).find((p) => p.command === 'top -b -d 1'), { timeout: 10_000 }).toBeDefined();
    const top = (await processes()).find((p) => p.command === 'top -b -d 1')!;
    expect(top).toMatchObject({ kind: 'session', sessionId: expect.stringMatching(/^s\d+$/) });
    const text = await hitch(['ps', 'box']);
    expect(text.out).toMatch(new RegExp(`^${top.sessionId} box: top -b -d 1 > /dev/null #1$`, 'm'));
    expect(text.out).toMatch(new RegExp(`^\\s+${top.pid}\\s+\\d+\\s+${TEST_USER}\\s+.*top -b -d 1$`, 'm'));

    const killed = await hitch(['kill', 'box', String(top.pid)]);
    expect(killed).toMatchObject({ status: 0, stderr: '' });
    expect(killed.out).toMatch(new RegExp(`^${top.pid}\\s+gone$`, 'm'));
    expect((await job.done).status).toBe(0); // top ends cleanly on TERM, and its hitch with it
  });

  it('escalates to KILL after the grace period for a job that ignores TERM', async () => {
    const job = hitchInBackground(['exec', 'box', '--', `sh -c 'trap "" TERM; exec sleep 601'`]);
    await expect.poll(async () => (await processes()).find((p) => p.command === 'sleep 601'), { timeout: 10_000 }).toBeDefined();
    const sleeper = (await processes()).find((p) => p.command === 'sleep 601')!;
    const out = await json(killOutputSchema, ['kill', 'box', String(sleeper.pid), '--grace', '0.3']);
    expect(out).toEqual({ host: 'box', pid: sleeper.pid, signal: 'TERM', scope: 'process', graceSeconds: 0.3, outcomes: [{ pid: sleeper.pid, outcome: 'killed' }], ok: true });
    expect((await job.done).status).toBe(137);
  });

  it('kills a whole subtree with --tree and another signal with --signal', async () => {
    const job = hitchInBackground(['exec', 'box', '--', `sh -c 'sleep 602 & sleep 603 & wait'`]);
    await expect.poll(async () => (await processes()).filter((p) => /^sleep 60[23]$/.test(p.command)).length, { timeout: 10_000 }).toBe(2);
    const parent = (await processes()).find((p) => p.command.startsWith('sh -c sleep 602'))!;
    const out = await json(killOutputSchema, ['kill', 'box', String(parent.pid), '--tree', '--signal', 'KILL']);
    expect(out).toMatchObject({ scope: 'tree', signal: 'KILL', ok: true });
    expect(out.outcomes).toHaveLength(3);
    // The children go first; their sh then either returns from `wait` or takes the KILL.
    expect([0, 137]).toContain((await job.done).status);
  });

  it('refuses to kill a pid that is not in the tree, sending nothing', async () => {
    const outsider = Number(execFileSync('su', ['-s', '/bin/sh', '-c', 'sleep 605 >/dev/null 2>&1 & echo $!', sshd.user]).toString().trim());
    try {
      const r = await hitch(['kill', 'box', String(outsider), '--signal', 'KILL']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^hitch: Process ${outsider} is not in this master's process tree; nothing was sent\\.\\n$`));
      expect(() => process.kill(outsider, 0)).not.toThrow();
    } finally {
      process.kill(outsider, 'SIGKILL');
    }
    expect((await hitch(['kill', 'box', 'abc'])).status).toBe(2);
    expect((await hitch(['kill', 'box', '123', '--signal', 'BOGUS'])).stderr).toMatch(/--signal: "BOGUS" is not one of/);
  });

  it("prints the master's control socket for ssh -S, or says why there is none", async () => {
    const r = await hitch(['socket', 'box']);
    if (r.status === 0) {
      const path = r.out.trim();
      expect(socketOutputSchema.parse(JSON.parse((await hitch(['socket', 'box', '--json'])).out)).controlPath).toBe(path);
      const configPath = join(dir, 'ssh_config');
      await run('ssh', ['-F', configPath, '-S', path, '-o', 'ControlMaster=no', 'box', 'true']);
    } else {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^hitch: the master of box \(.*\) serves no OpenSSH control socket/);
    }
    expect((await hitch(['socket', 'pw'])).stderr).toMatch(/^hitch: pw is not connected\. Connect it first: hitch connect pw\n$/);
  });

  it('runs the benchmark for one host', async () => {
    const report = await json(benchOutputSchema, ['bench', 'box', '--rounds', '2']);
    expect(report).toMatchObject({ hostId: 'box', rounds: 2 });
    expect(report.results.map((r) => r.method)).toContain('hitch-channel');
    expect((await hitch(['bench', 'box', '--rounds', '0'])).status).toBe(2);
  });

  it('refuses prompts with --batch or without a terminal, cancelling them', async () => {
    const batch = await hitch(['connect', 'pw', '--batch']);
    expect(batch.status).toBe(1);
    expect(batch.stderr).toMatch(/^hitch: Password for .*: this needs a person to answer, and there is nobody to ask \(--batch\)\./);
    const piped = await hitch(['connect', 'pw'], { input: '' });
    expect(piped.stderr).toMatch(/nobody to ask \(no terminal\)/);
    const state = await json(lsOutputSchema, ['ls']);
    expect(state.masters.find((m) => m.id.endsWith(`:${passwordSshd.port}`))?.state).not.toBe('ready');
  });

  it('asks for a password on the terminal, without echoing it', async () => {
    // `script` gives the command a terminal, as a person at a shell has.
    const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} connect pw`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    background.push(child);
    let screen = '';
    const done = new Promise<number | null>((r) => child.once('close', r));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      screen += d;
      if (/Password: $/.test(screen)) child.stdin!.write(`${TEST_PASSWORD}\r`);
      if (/Remember in the OS keychain\? \[y\/N\]: $/.test(screen)) child.stdin!.write('n\r');
    });
    const status = await done;
    expect({ status, screen }).toMatchObject({ status: 0, screen: expect.stringMatching(/^Password for .*@127\.0\.0\.1/m) });
    expect(screen).not.toContain(TEST_PASSWORD);
    expect(screen).toMatch(/pw: ready \(.*, password\)/);
  });

  it('answers a malformed request with an error and keeps serving', async () => {
    const client = await new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath, () => resolve(s));
      s.once('error', reject);
    });
    let buffer = '';
    const lines: Record<string, unknown>[] = [];
    client.setEncoding('utf8').on('data', (d: string) => {
      buffer += d;
      for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
        const message = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
        buffer = buffer.slice(nl + 1);
        if (!('event' in message)) lines.push(message);
      }
    });
    const reply = async (raw: string): Promise<Record<string, unknown>> => {
      const n = lines.length;
      client.write(raw + '\n');
      await expect.poll(() => lines.length).toBe(n + 1);
      return lines[n]!;
    };
    expect(await reply('not json')).toMatchObject({ id: null, ok: false, error: { code: 'bad-request', message: expect.stringMatching(/Malformed JSON/) } });
    expect(await reply('{"method":"state.get"}')).toMatchObject({ ok: false, error: { code: 'bad-request', message: expect.stringMatching(/"id": number/) } });
    expect(await reply('{"id":1,"method":"nope.nothing","params":{}}')).toMatchObject({ id: 1, ok: false, error: { message: 'Unknown method "nope.nothing".' } });
    expect(await reply('{"id":2,"method":"session.write","params":{"sessionId":"s1","data":"!!","encoding":"base64"}}')).toMatchObject({
      id: 2,
      error: { code: 'bad-request', message: expect.stringMatching(/Invalid parameters for session.write at "data"/) },
    });
    expect(await reply('{"id":3,"method":"state.get","params":{}}')).toMatchObject({ id: 3, ok: true });

    // Over 1 MiB: refused, and that connection closed; the engine serves on.
    const big = connect(socketPath);
    let answer = '';
    big.setEncoding('utf8').on('data', (d: string) => (answer += d));
    const closed = new Promise((r) => big.once('close', r));
    big.on('error', () => undefined);
    big.write('{"id":4,"method":"session.write","params":{"sessionId":"s1","data":"' + 'x'.repeat(1_200_000));
    await closed;
    expect(answer.split('\n')[0]).toMatch(/"code":"bad-request".*at most 1048576 bytes/);
    expect(await reply('{"id":5,"method":"state.get","params":{}}')).toMatchObject({ id: 5, ok: true });
    client.destroy();
  });

  it('refuses a client of another user: the kernel, and the peer uid check behind it', async () => {
    const probe = join(dir, 'probe.cjs');
    await writeFile(
      probe,
      `const s = require('node:net').connect(process.argv[2]);
       s.on('connect', () => s.write('{"id":1,"method":"state.get","params":{}}\\n'));
       s.on('data', (d) => { console.log('REPLY ' + d.toString().split('\\n')[0]); s.destroy(); });
       s.on('error', (e) => console.log('ERROR ' + e.code));`,
    );
    const asOther = async (path: string): Promise<string> =>
      (await run('su', ['-s', '/bin/sh', '-c', `${process.execPath} ${probe} ${path}`, TEST_USER])).stdout.trim();
    await chmod(dir, 0o755);
    await chmod(probe, 0o644);
    // The runtime directory is 0700: another user cannot even reach the socket.
    expect(await asOther(socketPath)).toBe('ERROR EACCES');

    // Even with the socket reachable and writable (a hard link in an open directory, 0666),
    // the engine checks the peer's uid and refuses.
    const open = await mkdtemp(join(tmpdir(), 'hitch-open-'));
    const linked = join(open, 's');
    try {
      await chmod(open, 0o755);
      await link(socketPath, linked);
      await chmod(linked, 0o666);
      expect(await asOther(linked)).toMatch(/^REPLY \{"id":null,"ok":false,"error":\{"code":"forbidden","message":"The Hitch engine serves only its own user\."\}\}$/);
    } finally {
      await chmod(socketPath, 0o600);
      await unlink(linked).catch(() => undefined);
      await rm(open, { recursive: true, force: true });
      await chmod(dir, 0o700);
    }
    expect((await hitch(['ls'])).status).toBe(0);
  });

  it('makes a web host started meanwhile use the running engine, and take over when it stops', async () => {
    const token = 'cli-test-token-0123456789abcdefghij';
    const web = spawn(process.execPath, [WEB, '--port', '0'], { env: { ...env, HITCH_WEB_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    background.push(web);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        web.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          const m = /127\.0\.0\.1:(\d+)\/.*\n.*Using the Hitch engine already running at (.*)\n/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        web.once('exit', (code) => reject(new Error(`web host exited with ${code}`)));
      });
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api?token=${token}`, { origin: `http://127.0.0.1:${port}` });
      await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
      const message = new Promise<Record<string, unknown>>((r) => ws.on('message', (d) => {
        const m = JSON.parse(d.toString()) as Record<string, unknown>;
        if (m.id === 1) r(m);
      }));
      ws.send(JSON.stringify({ id: 1, method: 'state.get', params: {} }));
      const state = (await message) as { ok: boolean; result: { masters: { id: string; state: string }[] } };
      const daemonMasters = (await json(lsOutputSchema, ['ls'])).masters;
      expect(state.ok).toBe(true);
      expect(state.result.masters.map((m) => m.id).sort()).toEqual(daemonMasters.map((m) => m.id).sort());
      expect(state.result.masters.find((m) => m.id.endsWith(`:${sshd.port}`))?.state).toBe('ready');
      ws.close();

      // The daemon stops: the web host runs an engine of its own and serves the socket itself.
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
      await expect.poll(async () => (await hitch(['ls'])).status, { timeout: 5_000 }).toBe(0);
      expect((await hitch(['daemon'])).stderr).toMatch(/an engine is already running/);
    } finally {
      web.kill('SIGTERM');
      await new Promise((r) => web.once('exit', r));
    }
    // Stopped cleanly, it removes its socket.
    expect((await hitch(['ls'])).stderr).toMatch(/no Hitch engine is running \(nothing serves/);
  });

  it('starts an engine in the background with --start, replacing a stale socket', async () => {
    const other = { HITCH_RUNTIME_DIR: join(dir, 'run2'), HITCH_DATA_DIR: join(dir, 'data2') };
    const first = await hitch(['ls', '--start'], { env: other });
    expect(first.status).toBe(0);
    /** The engine --start launched last logs its pid first thing. */
    const lastPid = async (): Promise<number> => Number([...(await readFile(join(dir, 'run2', 'engine.log'), 'utf8')).matchAll(/\(pid (\d+)\)/g)].at(-1)?.[1]);
    /** Running: not gone, and not a zombie nobody has reaped yet. */
    const alive = (pid: number): boolean => {
      try {
        return !/^\d+ \(.*\) Z /.test(execFileSync('cat', [`/proc/${pid}/stat`]).toString());
      } catch {
        return false;
      }
    };
    const crashed = await lastPid();
    expect(crashed).toBeGreaterThan(0);
    process.kill(crashed, 'SIGKILL'); // a crash: the socket file stays behind
    await expect.poll(() => alive(crashed)).toBe(false);
    expect((await stat(join(dir, 'run2', 'engine.sock'))).isSocket()).toBe(true);
    expect((await hitch(['ls'], { env: other })).stderr).toMatch(/no Hitch engine is running \(nothing serves/);

    expect((await hitch(['ls', '--start'], { env: other })).status).toBe(0);
    const replacement = await lastPid();
    expect(replacement).not.toBe(crashed);
    expect(alive(replacement)).toBe(true);
    process.kill(replacement, 'SIGTERM');
    // A clean stop removes the socket.
    await expect.poll(async () => (await stat(join(dir, 'run2', 'engine.sock')).catch(() => null)) === null).toBe(true);
  });
});

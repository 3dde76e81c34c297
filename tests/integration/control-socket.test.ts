// Stock OpenSSH clients riding Hitch's master through its control socket (OpenSSH's mux
// protocol): ssh with commands, terminals, forwards and -W; scp, sftp, rsync and git; many at
// once; killed clients, strangers and garbage. Against a real sshd, which must see one login.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlPathFor } from '../../main/engine/control-socket';
import { MSG, MessageWriter } from '../../main/engine/control-socket/frames';
import type { SessionView } from '../../preload/api';
import { startSshd, TEST_USER, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { muxOptions, muxSshCommand, runStock, started } from '../fixtures/stock-clients';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const asRoot = process.getuid?.() === 0;

let sshd: Sshd;
let t: TestEngine;
let sock: string;
/** A directory both this process and the remote login user can write. */
let shared: string;
/** Holds the socket directory, so that a test can loosen the permissions on the way to it. */
let socketRoot: string;

async function sessions(): Promise<SessionView[]> {
  return (await t.engine.snapshot()).sessions;
}

async function controlPath(engine: TestEngine): Promise<string | null> {
  return (await engine.engine.snapshot()).masters[0]?.controlPath ?? null;
}

/** The master's control path once it serves one (beforeAll cannot use expect.poll). */
async function servedPath(engine: TestEngine): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const path = await controlPath(engine);
    if (path) return path;
    await sleep(50);
  }
  throw new Error(`no control socket: ${engine.logLines.filter((l) => l.includes('control')).join('\n')}`);
}

function ssh(args: string[], opts: { input?: string; timeoutMs?: number } = {}): ReturnType<typeof runStock> {
  return runStock('ssh', [...muxOptions(sock), ...args], opts);
}

beforeAll(async () => {
  // Room for 20 clients at once, plus the spare channel and the process monitor.
  sshd = await startSshd({ maxSessions: 40 });
  socketRoot = await mkdtemp(join(tmpdir(), 'hitch-ctl-'));
  t = await testEngine(sshd.clientConfig('mux'), { controlSocketDir: join(socketRoot, 's') });
  await t.engine.connect('mux');
  sock = await servedPath(t);
  shared = await mkdtemp(join(tmpdir(), 'hitch-mux-'));
  await chmod(shared, 0o1777);
});

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
  if (shared) await rm(shared, { recursive: true, force: true });
  if (socketRoot) await rm(socketRoot, { recursive: true, force: true });
});

describe('a master serving a control socket', () => {
  it('lives in a private directory, with a short path, only for its owner', async () => {
    expect(Buffer.byteLength(sock)).toBeLessThan(90);
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
    expect((await stat(join(sock, '..'))).mode & 0o777).toBe(0o700);
    const check = await ssh(['-O', 'check', 'mux']);
    expect(check.code).toBe(0);
    expect(check.stderr).toContain(`Master running (pid=${process.pid})`);
  });

  it('runs commands for ssh -S: stdout, stderr, exit codes and stdin, as external sessions', async () => {
    const r = await ssh(['mux', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    const piped = await ssh(['mux', 'tr a-z A-Z'], { input: 'through the socket\n' });
    expect(piped).toMatchObject({ code: 0, stdout: 'THROUGH THE SOCKET\n' });
    // An empty stdin (a socket its parent shut at once): the command still sees its end.
    expect(await ssh(['mux', 'cat; echo end'], { input: '' })).toMatchObject({ code: 0, stdout: 'end\n' });
    // A command killed by a signal: OpenSSH's master sends no exit status, so the client says 255.
    expect((await ssh(['mux', 'kill -TERM $$'])).code).toBe(255);
    // The reader of its output went away: the command meets a closed pipe on the host and ends
    // (`yes` never ends otherwise).
    expect(await runStock('bash', ['-c', `set -o pipefail; ${muxSshCommand(sock)} mux yes | head -n 1`])).toMatchObject({ code: 255, stdout: 'y\n' });
    const big = await ssh(['mux', 'head -c 3000000 /dev/zero']);
    expect(big.stdout.length).toBe(3_000_000);

    // Shown while they ran, as external sessions of this host; no output went anywhere else.
    const external = t.events.flatMap((e) => (e.event === 'session.changed' && e.payload.external ? [e.payload] : []));
    expect(external.map((s) => s.command)).toEqual(expect.arrayContaining(['echo out; echo err >&2; exit 3', 'tr a-z A-Z']));
    expect(external.every((s) => s.masterId === external[0]!.masterId && s.hostId === 'mux')).toBe(true);
    expect(t.events.some((e) => e.event === 'session.data' && external.some((s) => s.id === e.payload.sessionId))).toBe(false);
    // Once ended they are let go: the master keeps only how the last few ended, newest first.
    await expect.poll(async () => (await sessions()).filter((s) => s.external).length).toBe(0);
    const recent = (await t.engine.snapshot()).masters[0]!.recentExternal;
    expect(recent.map((s) => s.title)).toEqual(['mux: head -c 3000000 /dev/zero', 'mux: yes', 'mux: kill -TERM $$', 'mux: cat; echo end', 'mux: tr a-z A-Z']);
    expect(recent[4]).toMatchObject({ exitCode: 0, exitSignal: null });
    expect(recent[1]).toMatchObject({ exitSignal: 'PIPE' });
    expect(recent[2]).toMatchObject({ exitSignal: 'TERM' });
  });

  it('gives a client its descriptors back as it lent them: a pipe the script writes to next stays blocking', async () => {
    // What runs after ssh in a script writes to the same pipe. Left non-blocking by the master,
    // a big write meeting a slow reader fails with EAGAIN ("Resource temporarily unavailable").
    const script = `${muxSshCommand(sock)} mux true && dd if=/dev/zero bs=1M count=4 status=none; echo dd=$? >&2`;
    const ran = await runStock('bash', ['-c', `(${script}) | (sleep 1; wc -c)`]);
    expect(ran.stderr).toContain('dd=0');
    expect(ran.stdout.trim()).toBe(String(4 * 1024 * 1024));
  });

  it('shows an external session with its processes, and a signal from Hitch ends it', async () => {
    // Another session stays open meanwhile: the process monitor closes with a master's last
    // session, which would race the check that follows the signal (a ProcessTrees matter).
    const shell = await t.engine.openSession('mux', { kind: 'shell', cols: 80, rows: 24 });
    const { done } = started('ssh', [...muxOptions(sock), 'mux', 'sleep 31']);
    await expect.poll(async () => (await sessions()).find((s) => s.command === 'sleep 31' && s.rootPid !== null), { timeout: 8_000 }).toBeTruthy();
    const session = (await sessions()).find((s) => s.command === 'sleep 31')!;
    const tree = await t.engine.processTree('mux');
    const sleeper = tree.processes.find((p) => p.command === 'sleep 31');
    expect(sleeper?.sessionId).toBe(session.id);
    const outcomes = await t.engine.signalProcess('mux', sleeper!.pid, 'TERM', 'process');
    expect(outcomes[0]?.outcome).toBe('gone');
    expect((await done).code).toBe(255);
    t.engine.closeSession(shell.id);
  });

  it('gives a terminal session the client’s size, terminal type and later resizes (a real pty)', async () => {
    // In script's pty: note the pty's name, set a size, start ssh -t. Once the remote side is
    // up, the test resizes that pty from outside; the kernel sends SIGWINCH to ssh, which passes
    // it to Hitch's pid, which reads the new size from the terminal it was passed.
    const ttyFile = join(shared, 'pty-name');
    const remote = 'stty size; echo TERM=$TERM; echo READY; n=0; while [ "$(stty size)" = "22 77" ] && [ $n -lt 80 ]; do sleep 0.1; n=$((n+1)); done; stty size';
    const inPty = `tty > ${ttyFile}; stty cols 77 rows 22; exec ${muxSshCommand(sock)} -tt mux '${remote}'`;
    // script's stdin stays open: at its end script would type an EOF character into the pty.
    const { done, child } = started('script', ['-qec', inPty, '/dev/null'], { env: { ...process.env, TERM: 'vt220' }, openStdin: true });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString().replace(/\r/g, '')));
    await expect.poll(() => out, { timeout: 10_000 }).toContain('READY');
    const pty = (await readFile(ttyFile, 'utf8')).trim();
    // The client passes SIGWINCH on only once it has its session: resize again if the first was early.
    let exited = false;
    void done.then(() => (exited = true));
    for (const [cols, rows] of [[101, 33], [102, 34], [103, 35]] as const) {
      await sleep(300);
      if (exited || /\n3[345] 10[123]\n/.test(out)) break;
      await run('stty', ['-F', pty, 'cols', String(cols), 'rows', String(rows)]).catch(() => undefined);
      await expect
        .poll(() => exited || /\n3[345] 10[123]\n/.test(out), { timeout: 3_000 })
        .toBe(true)
        .catch(() => undefined);
    }
    const r = await done;
    child.stdin?.end();
    expect(out).toContain('22 77\n');
    expect(out).toContain('TERM=vt220\n');
    expect(out).toMatch(/\n3[345] 10[123]\n/);
    expect(out).toContain('Shared connection to mux closed.');
    expect(r.code).toBe(0);
  });

  it('copies files both ways with scp and sftp', async () => {
    const local = await mkdtemp(join(tmpdir(), 'hitch-copy-'));
    try {
      const payload = Buffer.alloc(700_000, 7).toString('base64');
      await writeFile(join(local, 'up.txt'), payload);
      const scpUp = await runStock('scp', ['-q', ...muxOptions(sock), join(local, 'up.txt'), `mux:${shared}/scp-up.txt`]);
      expect(scpUp.code, scpUp.stderr).toBe(0);
      expect(await readFile(join(shared, 'scp-up.txt'), 'utf8')).toBe(payload);
      const scpDown = await runStock('scp', ['-q', ...muxOptions(sock), `mux:${shared}/scp-up.txt`, join(local, 'scp-down.txt')]);
      expect(scpDown.code, scpDown.stderr).toBe(0);
      expect(await readFile(join(local, 'scp-down.txt'), 'utf8')).toBe(payload);

      const batch = join(local, 'batch');
      await writeFile(batch, `put ${join(local, 'up.txt')} ${shared}/sftp-up.txt\nget ${shared}/sftp-up.txt ${join(local, 'sftp-down.txt')}\n`);
      const sftp = await runStock('sftp', ['-q', ...muxOptions(sock), '-b', batch, 'mux']);
      expect(sftp.code, sftp.stderr).toBe(0);
      expect(await readFile(join(shared, 'sftp-up.txt'), 'utf8')).toBe(payload);
      expect(await readFile(join(local, 'sftp-down.txt'), 'utf8')).toBe(payload);
      expect((await t.engine.snapshot()).masters[0]!.recentExternal.some((s) => s.title === 'mux: sftp (subsystem)')).toBe(true);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it('syncs a tree with rsync and clones a repository with git', async () => {
    const local = await mkdtemp(join(tmpdir(), 'hitch-sync-'));
    try {
      await mkdir(join(local, 'tree', 'sub'), { recursive: true });
      await writeFile(join(local, 'tree', 'a.txt'), 'alpha\n');
      await writeFile(join(local, 'tree', 'sub', 'b.txt'), 'beta\n');
      const up = await runStock('rsync', ['-a', '-e', muxSshCommand(sock), join(local, 'tree') + '/', `mux:${shared}/tree/`]);
      expect(up.code, up.stderr).toBe(0);
      expect(await readFile(join(shared, 'tree', 'sub', 'b.txt'), 'utf8')).toBe('beta\n');
      const down = await runStock('rsync', ['-a', '-e', muxSshCommand(sock), `mux:${shared}/tree/`, join(local, 'back') + '/']);
      expect(down.code, down.stderr).toBe(0);
      expect(await readFile(join(local, 'back', 'a.txt'), 'utf8')).toBe('alpha\n');

      // The bare repository is made on the test host by its own user, through the socket too.
      const git = 'git -c user.email=t@example.org -c user.name=t';
      const made = await ssh([
        'mux',
        `set -e; cd ${shared}; git init -q src; cd src; echo hello > f; git add f; ${git} commit -qm first; cd ..; git clone -q --bare src repo.git`,
      ]);
      expect(made.code, made.stderr).toBe(0);
      const clone = await runStock('git', ['clone', '-q', `mux:${shared}/repo.git`, join(local, 'clone')], {
        env: { ...process.env, GIT_SSH_COMMAND: muxSshCommand(sock), GIT_TERMINAL_PROMPT: '0' },
      });
      expect(clone.code, clone.stderr).toBe(0);
      expect(await readFile(join(local, 'clone', 'f'), 'utf8')).toBe('hello\n');
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it('carries twenty clients at once on the one connection', async () => {
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => ssh(['mux', `sleep 0.3; echo client-${i}`])));
    runs.forEach((r, i) => expect(r).toMatchObject({ code: 0, stdout: `client-${i}\n` }));
  });

  it('survives a client killed mid-session, and hangs up its command', async () => {
    const { child, done } = started('ssh', [...muxOptions(sock), 'mux', 'sleep 32']);
    await expect.poll(async () => (await sessions()).find((s) => s.command === 'sleep 32')?.state, { timeout: 8_000 }).toBe('open');
    child.kill('SIGKILL');
    await done;
    // Ended: gone from the sessions, remembered by the master as how it ended.
    await expect.poll(async () => (await t.engine.snapshot()).masters[0]!.recentExternal.some((s) => s.title === 'mux: sleep 32'), { timeout: 8_000 }).toBe(true);
    expect((await sessions()).some((s) => s.command === 'sleep 32')).toBe(false);
    if (asRoot) await expect.poll(async () => (await run('pgrep', ['-u', TEST_USER, '-f', '^sleep 32$']).catch(() => ({ stdout: '' }))).stdout, { timeout: 8_000 }).toBe('');
    expect((await ssh(['mux', 'echo still-here'])).stdout).toBe('still-here\n');
    expect((await t.engine.snapshot()).masters[0]?.state).toBe('ready');
  });

  it('logs the program a stock client runs, never its arguments', async () => {
    const ran = await ssh(['mux', 'echo', 'hunter2-secret-argument']);
    expect(ran.stdout).toBe('hunter2-secret-argument\n');
    const started = t.logLines.filter((l) => l.includes('control socket: session started'));
    expect(started.some((l) => l.includes('"program":"echo"'))).toBe(true);
    expect(t.logLines.join('\n')).not.toContain('hunter2-secret-argument');
  });
});

describe('a server that refuses terminals (PermitTTY no)', () => {
  it('tells the client the pty was refused, and the command still runs', async () => {
    const strict = await startSshd({ extraConfig: ['PermitTTY no'] });
    const s = await testEngine(strict.clientConfig('strict'), { controlSocketDir: join(socketRoot, 'strict') });
    try {
      await s.engine.connect('strict');
      const path = await servedPath(s);
      const inPty = `exec ${muxSshCommand(path)} -tt strict '[ -t 0 ] || echo no-terminal-here'`;
      const r = await runStock('script', ['-qec', inPty, '/dev/null'], { timeoutMs: 10_000 });
      expect(r.stdout.replace(/\r/g, '')).toContain('no-terminal-here\n');
      expect(r.code).toBe(0);
      expect(s.logLines.some((l) => l.includes('the server refused a pty'))).toBe(true);
    } finally {
      await s.close();
      await strict.stop();
    }
  });
});

describe('forwards through the control socket', () => {
  /** Reads the first bytes a TCP service sends. */
  function banner(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString());
      });
      s.once('error', reject);
    });
  }

  async function freeLocalPort(): Promise<number> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as { port: number };
    await new Promise((r) => srv.close(r));
    return port;
  }

  it('opens and cancels a local forward (ssh -O forward -L / -O cancel)', async () => {
    const port = await freeLocalPort();
    const spec = `127.0.0.1:${port}:127.0.0.1:${sshd.port}`;
    expect((await ssh(['-O', 'forward', '-L', spec, 'mux'])).code).toBe(0);
    expect(await banner(port)).toMatch(/^SSH-2\.0-/);
    expect((await ssh(['-O', 'cancel', '-L', spec, 'mux'])).code).toBe(0);
    await expect(banner(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('opens a dynamic (SOCKS) forward', async () => {
    const port = await freeLocalPort();
    expect((await ssh(['-O', 'forward', '-D', `127.0.0.1:${port}`, 'mux'])).code).toBe(0);
    const greeting = await new Promise<string>((resolve, reject) => {
      const s: Socket = connect(port, '127.0.0.1');
      let stage = 0;
      s.on('data', (d) => {
        if (stage === 0) {
          expect([...d]).toEqual([5, 0]);
          stage = 1;
          const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
          req.writeUInt16BE(sshd.port, 8);
          s.write(req);
        } else if (stage === 1) {
          expect(d[1]).toBe(0); // granted
          stage = 2;
          if (d.length > 10) resolve(d.subarray(10).toString());
        } else {
          s.destroy();
          resolve(d.toString());
        }
      });
      s.once('error', reject);
      s.write(Buffer.from([5, 1, 0]));
    });
    expect(greeting).toMatch(/^SSH-2\.0-/);
    expect((await ssh(['-O', 'cancel', '-D', `127.0.0.1:${port}`, 'mux'])).code).toBe(0);
  });

  it('opens a remote forward on a port the server picks', async () => {
    const echo: Server = createServer((s) => s.end('from-the-local-side\n'));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const target = (echo.address() as { port: number }).port;
    try {
      const r = await ssh(['-O', 'forward', '-R', `0:127.0.0.1:${target}`, 'mux']);
      expect(r.code, r.stderr).toBe(0);
      const remotePort = Number(r.stdout.trim());
      expect(remotePort).toBeGreaterThan(0);
      // The server listens on its loopback: this machine's, in this test.
      expect(await banner(remotePort)).toBe('from-the-local-side\n');
      expect((await ssh(['-O', 'cancel', '-R', `0:127.0.0.1:${target}`, 'mux'])).code).toBe(0);
    } finally {
      echo.close();
    }
  });

  it('serves ssh -W, so that a ProxyJump through Hitch reaches another host', async () => {
    const behind = await startSshd();
    try {
      const r = await runStock('ssh', [
        '-F', '/dev/null',
        '-o', `ProxyCommand=${muxSshCommand(sock)} -W %h:%p mux`,
        '-o', `UserKnownHostsFile=${behind.knownHosts}`,
        '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'BatchMode=yes',
        '-o', 'IdentitiesOnly=yes',
        '-i', behind.clientKey,
        '-p', String(behind.port),
        '-l', behind.user,
        '127.0.0.1',
        'echo behind-the-jump',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('behind-the-jump\n');
      expect(await behind.acceptedLogins()).toBe(1);
    } finally {
      await behind.stop();
    }
  });
});

describe('proxy mode (ssh -O proxy)', () => {
  // `ssh -O proxy HOST CMD` makes the client an SSH client of its own over the socket: it speaks
  // the connection protocol (its own channels, pty, window) and the master relays it.
  const proxied = (args: string[], opts: { input?: string | Buffer } = {}): ReturnType<typeof runStock> =>
    runStock('ssh', [...muxOptions(sock), '-O', 'proxy', ...args], opts);
  const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
  /** A raw connection in proxy mode: HELLO, PROXY, and MUX_S_PROXY read. */
  async function proxyClient(): Promise<{ s: Socket; received: () => Buffer; closed: Promise<void> }> {
    const s = connect(sock);
    let got = Buffer.alloc(0);
    s.on('data', (d) => (got = Buffer.concat([got, d])));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.write(Buffer.concat([new MessageWriter(MSG.HELLO).u32(4).frame(), new MessageWriter(MSG.C_PROXY).u32(1).frame()]));
    await expect.poll(() => got.length, { timeout: 2_000 }).toBeGreaterThanOrEqual(12 + 12);
    expect(got.readUInt32BE(16)).toBe(MSG.S_PROXY);
    got = got.subarray(24);
    return { s, received: () => got, closed };
  }
  /** One proxy-mode packet: length, padding length 0, type, body (a Buffer field as it is). */
  const packet = (type: number, ...fields: (number | string | Buffer)[]): Buffer => {
    const body = fields.map((f) => {
      if (Buffer.isBuffer(f)) return f;
      if (typeof f === 'number') return Buffer.from([f >>> 24, (f >>> 16) & 0xff, (f >>> 8) & 0xff, f & 0xff]);
      const b = Buffer.alloc(4 + Buffer.byteLength(f));
      b.writeUInt32BE(Buffer.byteLength(f));
      b.write(f, 4);
      return b;
    });
    const head = Buffer.alloc(6);
    head.writeUInt32BE(2 + body.reduce((n, b) => n + b.length, 0));
    head[5] = type;
    return Buffer.concat([head, ...body]);
  };
  /** The whole packets in `bytes`: type and body (no padding in what Hitch sends, but for bodiless replies). */
  const packets = (bytes: Buffer): { type: number; body: Buffer }[] => {
    const out: { type: number; body: Buffer }[] = [];
    for (let at = 0; at + 4 <= bytes.length; ) {
      const length = bytes.readUInt32BE(at);
      if (at + 4 + length > bytes.length) break;
      out.push({ type: bytes[at + 5]!, body: bytes.subarray(at + 6, at + 4 + length - bytes[at + 4]!) });
      at += 4 + length;
    }
    return out;
  };

  it('sends no more than the client’s window, in packets no larger than it asked for', async () => {
    const c = await proxyClient();
    // A session channel (90) with a window of 1000 bytes and packets of at most 300.
    c.s.write(packet(90, 'session', 5, 1000, 300));
    await expect.poll(() => packets(c.received()).length, { timeout: 5_000 }).toBe(1);
    const [confirmation] = packets(c.received());
    expect(confirmation!.type).toBe(91);
    expect(confirmation!.body.readUInt32BE(0)).toBe(5); // the client's channel number
    const ours = confirmation!.body.readUInt32BE(4);
    expect(confirmation!.body.readUInt32BE(8)).toBe(2 * 1024 * 1024); // the window Hitch gives
    c.s.write(packet(98, ours, 'exec', Buffer.from([1]), 'head -c 100000 /dev/zero'));
    const data = (): Buffer[] => packets(c.received()).filter((p) => p.type === 94).map((p) => p.body.subarray(8));
    await expect.poll(() => data().reduce((n, d) => n + d.length, 0), { timeout: 5_000 }).toBe(1000);
    await sleep(300);
    expect(data().reduce((n, d) => n + d.length, 0)).toBe(1000); // held back, not dropped
    expect(packets(c.received()).find((p) => p.type === 99)).toBeTruthy(); // exec accepted
    c.s.write(packet(93, ours, 99_000));
    await expect.poll(() => packets(c.received()).some((p) => p.type === 97), { timeout: 5_000 }).toBe(true);
    expect(data().reduce((n, d) => n + d.length, 0)).toBe(100_000);
    expect(Math.max(...data().map((d) => d.length))).toBe(300);
    const exit = packets(c.received()).find((p) => p.type === 98)!;
    expect(exit.body.subarray(8, 8 + 11).toString()).toBe('exit-status');
    expect(exit.body.readUInt32BE(exit.body.length - 4)).toBe(0);
    expect(packets(c.received()).map((p) => p.type).slice(-3)).toEqual([96, 98, 97]); // EOF, exit-status, CLOSE
    c.s.write(packet(97, ours));
    c.s.end();
    await c.closed;
  });


  it('runs a command: stdout, stderr and exit code, shown as an external session', async () => {
    const r = await proxied(['mux', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    // Listed among the master's last few ended sessions (before more sessions push it out).
    await expect
      .poll(async () => (await t.engine.snapshot()).masters[0]!.recentExternal.some((s) => s.title === 'mux: echo out; echo err >&2; exit 3' && s.exitCode === 3))
      .toBe(true);
    expect((await proxied(['mux', 'kill -TERM $$'])).code).toBe(255); // exit-signal: no status
    // The client's keepalives are global requests: refused, and the client carries on.
    const alive = await proxied(['-o', 'ServerAliveInterval=1', 'mux', 'sleep 2.5; echo still-alive']);
    expect(alive).toMatchObject({ code: 0, stdout: 'still-alive\n' });
    expect(t.logLines.some((l) => l.includes('global request refused') && l.includes('keepalive@openssh.com'))).toBe(true);
    // A subsystem; one the server does not have is refused with CHANNEL_FAILURE.
    expect((await proxied(['-s', 'mux', 'sftp'])).code).toBe(0);
    const missing = await proxied(['-s', 'mux', 'no-such-subsystem']);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toMatch(/subsystem request failed/);
  });

  it('carries 1 MiB through stdin and back within the windows, verified by sha256', async () => {
    const payload = randomBytes(1024 * 1024);
    const summed = await proxied(['mux', 'sha256sum'], { input: payload });
    expect(summed).toMatchObject({ code: 0, stdout: `${sha256(payload)}  -\n` });
    // Both ways at once: 4 MiB of text echoed back, more than a window (2 MiB) each way.
    const text = Buffer.concat([payload, randomBytes(2 * 1024 * 1024)]).toString('base64');
    const echoed = await proxied(['mux', 'cat'], { input: text });
    expect(echoed.code, echoed.stderr).toBe(0);
    expect(sha256(echoed.stdout)).toBe(sha256(text));
  });

  it('gives a terminal session the client’s terminal size, type and later resizes', async () => {
    // The client handles SIGWINCH itself in proxy mode and sends window-change on its channel.
    const ttyFile = join(shared, 'proxy-pty-name');
    const remote = '[ -t 0 ] && echo on-a-tty; echo TERM=$TERM; stty size; echo READY; n=0; while [ "$(stty size)" = "23 79" ] && [ $n -lt 80 ]; do sleep 0.1; n=$((n+1)); done; stty size';
    const inPty = `tty > ${ttyFile}; stty cols 79 rows 23; exec ${muxSshCommand(sock)} -O proxy -tt mux '${remote}'`;
    const { done, child } = started('script', ['-qec', inPty, '/dev/null'], { env: { ...process.env, TERM: 'vt220' }, openStdin: true });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString().replace(/\r/g, '')));
    await expect.poll(() => out, { timeout: 10_000 }).toContain('READY');
    await run('stty', ['-F', (await readFile(ttyFile, 'utf8')).trim(), 'cols', '111', 'rows', '44']);
    const r = await done;
    child.stdin?.end();
    expect(out).toContain('on-a-tty\n');
    expect(out).toContain('TERM=vt220\n');
    expect(out).toContain('23 79\n');
    expect(out).toContain('44 111\n');
    expect(r.code).toBe(0);
  });

  it('opens direct-tcpip channels: a local forward of the proxy client reaches the server side', async () => {
    // `-W` cannot be combined with `-O`, but a proxy client's own -L forwards open direct-tcpip.
    const [port, refusedPort] = await Promise.all(
      [0, 1].map(async () => {
        const free = createServer();
        await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
        const { port: p } = free.address() as { port: number };
        await new Promise((r) => free.close(r));
        return p;
      }),
    );
    const forwards = ['-L', `127.0.0.1:${port}:127.0.0.1:${sshd.port}`, '-L', `127.0.0.1:${refusedPort}:127.0.0.1:1`];
    const { child, done } = started('ssh', [...muxOptions(sock), '-O', 'proxy', ...forwards, 'mux', 'sleep 20']);
    const firstBytes = (p: number): Promise<string> =>
      new Promise((resolve) => {
        const s = connect(p, '127.0.0.1');
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('error', () => resolve(`error`));
        s.on('close', () => resolve(got));
        setTimeout(() => s.destroy(), 1_000);
      });
    try {
      await expect.poll(() => firstBytes(port!), { timeout: 8_000 }).toMatch(/^SSH-2\.0-/);
      // Port 1 refuses: the server's OPEN_FAILURE reaches the client, which drops that connection.
      expect(await firstBytes(refusedPort!)).toBe('');
    } finally {
      child.kill('SIGTERM');
    }
    expect((await done).stderr).toMatch(/open failed: connect failed/);
  });

  it('closes the session of a proxy client that is killed', async () => {
    const { child, done } = started('ssh', [...muxOptions(sock), '-O', 'proxy', 'mux', 'sleep 34']);
    await expect.poll(async () => (await sessions()).find((s) => s.command === 'sleep 34')?.state, { timeout: 8_000 }).toBe('open');
    child.kill('SIGKILL');
    await done;
    // Ended: gone from the sessions, remembered by the master as how it ended.
    await expect.poll(async () => (await t.engine.snapshot()).masters[0]!.recentExternal.some((s) => s.title === 'mux: sleep 34'), { timeout: 8_000 }).toBe(true);
    expect((await sessions()).some((s) => s.command === 'sleep 34')).toBe(false);
  });

  it('refuses what it does not offer, and closes only a client that breaks the protocol', async () => {
    const { done } = started('ssh', [...muxOptions(sock), '-O', 'proxy', 'mux', 'sleep 1; echo survived']);
    const c = await proxyClient();
    // A global request asking for a reply (80, want reply 1): REQUEST_FAILURE (82), padded to
    // the 5 bytes OpenSSH's reader needs. An X11 channel (90): OPEN_FAILURE (92), reason 1.
    c.s.write(Buffer.concat([packet(80, 'keepalive@openssh.com', Buffer.from([1])), packet(90, 'x11', 7, 65536, 32768)]));
    await expect.poll(() => c.received().length, { timeout: 2_000 }).toBeGreaterThanOrEqual(9 + 4 + 2 + 12);
    const got = c.received();
    expect([got.readUInt32BE(0), got[4], got[5]]).toEqual([5, 3, 82]);
    expect(got[9 + 5]).toBe(92);
    expect(got.readUInt32BE(9 + 6)).toBe(7);
    expect(got.readUInt32BE(9 + 10)).toBe(1);
    // Data for a channel that does not exist: that client is closed, the other goes on.
    c.s.write(packet(94, 12345, 'stray'));
    await c.closed;
    // So is one whose packet breaks the format: a truncated open, more padding than packet.
    for (const bytes of [packet(90, 'session', 1), Buffer.from([0, 0, 0, 2, 9, 90])]) {
      const bad = await proxyClient();
      bad.s.write(bytes);
      await bad.closed;
    }
    const r = await done;
    expect(r).toMatchObject({ code: 0, stdout: 'survived\n' });
    expect(t.logLines.some((l) => l.includes('malformed proxy input'))).toBe(true);
    expect((await proxied(['mux', 'echo after'])).stdout).toBe('after\n');
  });
});

describe('what the control socket refuses', () => {
  /** A raw connection to the socket that has read the master's HELLO. */
  async function raw(): Promise<{ s: Socket; received: () => Buffer; closed: Promise<void> }> {
    const s = connect(sock);
    let got = Buffer.alloc(0);
    s.on('data', (d) => (got = Buffer.concat([got, d])));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    await expect.poll(() => got.length, { timeout: 2_000 }).toBeGreaterThanOrEqual(12);
    got = got.subarray(12);
    return { s, received: () => got, closed };
  }

  const hello = new MessageWriter(MSG.HELLO).u32(4).frame();

  it('closes connections that send garbage, and keeps serving everyone else', async () => {
    const { child, done } = started('ssh', [...muxOptions(sock), 'mux', 'sleep 1; echo survived']);
    const cases: Buffer[] = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]), // oversized length
      Buffer.from([0, 0, 0, 2, 1, 2]), // frame too short for its type
      new MessageWriter(MSG.C_ALIVE_CHECK).u32(1).frame(), // out of order: no HELLO first
      new MessageWriter(MSG.HELLO).u32(3).frame(), // wrong version
      Buffer.concat([hello, hello]), // HELLO twice
      Buffer.concat([hello, new MessageWriter(MSG.C_NEW_SESSION).u32(1).string('').u32(0).frame()]), // truncated
      Buffer.concat([hello, new MessageWriter(MSG.C_OPEN_FWD).u32(1).u32(1).string('').u32(70000).string('x').u32(22).frame()]), // port out of range
      Buffer.concat([hello, new MessageWriter(MSG.C_NEW_STDIO_FWD).u32(1).string('').string('a\0b').u32(22).frame()]), // NUL in a string
      // A session whose descriptor bytes come without descriptors.
      Buffer.concat([hello, new MessageWriter(MSG.C_NEW_SESSION).u32(1).string('').u32(0).u32(0).u32(0).u32(0).u32(0xffffffff).string('').string('true').frame(), Buffer.from([0, 0, 0])]),
    ];
    for (const bytes of cases) {
      const c = await raw();
      c.s.write(bytes);
      await c.closed; // the master hangs up on it
    }
    // Random bytes after a proper HELLO.
    for (let i = 0; i < 20; i++) {
      const c = await raw();
      const noise = Buffer.alloc(64 + i * 13);
      for (let j = 0; j < noise.length; j++) noise[j] = (j * 7919 + i * 104729) & 0xff;
      c.s.end(Buffer.concat([hello, noise]));
      await c.closed;
    }
    // An unknown request is answered with a failure, and the connection goes on.
    const c = await raw();
    c.s.write(Buffer.concat([hello, new MessageWriter(0x10000077).u32(9).frame(), new MessageWriter(MSG.C_ALIVE_CHECK).u32(10).frame()]));
    await expect.poll(() => c.received().length, { timeout: 2_000 }).toBeGreaterThanOrEqual(4 + 4 + 4 + 4 + 'unsupported request'.length + 16);
    const got = c.received();
    expect(got.readUInt32BE(4)).toBe(MSG.S_FAILURE);
    expect(got.readUInt32BE(8)).toBe(9);
    expect(got.subarray(16, 16 + 19).toString()).toBe('unsupported request');
    expect(got.readUInt32BE(35 + 4)).toBe(MSG.S_ALIVE);
    c.s.destroy();

    expect((await done).stdout).toBe('survived\n');
    expect(child.exitCode).toBe(0);
    expect((await ssh(['mux', 'echo after-the-noise'])).stdout).toBe('after-the-noise\n');
    expect(t.logLines.some((l) => l.includes('malformed input'))).toBe(true);
  });

  it.skipIf(!asRoot)('refuses a peer of another user, even when the socket is reachable', async () => {
    const asUser = (args: string[]): ReturnType<typeof runStock> =>
      runStock('setpriv', ['--reuid', TEST_USER, '--regid', TEST_USER, '--clear-groups', '--', 'ssh', ...muxOptions(sock), ...args]);
    const denied = await asUser(['-O', 'check', 'mux']);
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(/Permission denied/);

    // Loosen the permissions as a careless admin might: the peer check still says no.
    const dirs = [join(sock, '..'), socketRoot];
    const modes = await Promise.all(dirs.map(async (d) => (await stat(d)).mode & 0o777));
    await Promise.all(dirs.map((d) => chmod(d, 0o711)));
    await chmod(sock, 0o666);
    try {
      const refused = await asUser(['-O', 'check', 'mux']);
      expect(refused.code).toBe(255);
      expect(refused.stderr).not.toContain('Master running');
      expect(t.logLines.some((l) => l.includes('refused a peer of another user'))).toBe(true);
    } finally {
      await chmod(sock, 0o600);
      await Promise.all(dirs.map((d, i) => chmod(d, modes[i]!)));
    }
  });
});

describe('ssh config for stock clients', () => {
  it('shows the Include first, and once applied plain ssh with that config rides the master', async () => {
    const before = await readFile(t.configPath, 'utf8');
    const snippet = await t.engine.sshConfigSnippet();
    expect(snippet.text).toContain(`Host mux\n  ControlPath ${sock}\n  ControlMaster no\n`);
    const shown = await t.engine.sshConfigInclude(false);
    expect(shown).toMatchObject({ applied: false, alreadyIncluded: false, line: `Include ${snippet.path}` });
    expect(shown.preview.split('\n')[0]).toBe(`Include ${snippet.path}`);
    expect(await readFile(t.configPath, 'utf8')).toBe(before); // shown, not made

    expect(await t.engine.sshConfigInclude(true)).toMatchObject({ applied: true });
    expect((await readFile(t.configPath, 'utf8')).startsWith(`Include ${snippet.path}\n`)).toBe(true);
    expect(await t.engine.sshConfigInclude(true)).toMatchObject({ applied: false, alreadyIncluded: true });
    const plain = await runStock('ssh', ['-F', t.configPath, '-o', 'BatchMode=yes', 'mux', 'echo plain-ssh']);
    expect(plain).toMatchObject({ code: 0, stdout: 'plain-ssh\n' });
  });
});

describe('the socket over the master’s life', () => {
  it('was one login for everything above', async () => {
    expect(await sshd.acceptedLogins()).toBe(1);
  });

  it('stops listening for ssh -O stop, and closes the master for ssh -O exit', async () => {
    const stop = await ssh(['-O', 'stop', 'mux']);
    expect(stop.code).toBe(0);
    await expect.poll(() => controlPath(t)).toBeNull();
    await expect(stat(sock)).rejects.toThrow(/ENOENT/);
    expect((await t.engine.snapshot()).masters[0]?.state).toBe('ready');

    // Connected again, the master serves again; `ssh -O exit` then closes it.
    await t.engine.disconnect('mux');
    await expect.poll(async () => (await t.engine.snapshot()).masters[0]?.state).toBe('closed');
    await t.engine.connect('mux');
    await expect.poll(() => controlPath(t), { timeout: 5_000 }).toBe(sock);
    const exit = await ssh(['-O', 'exit', 'mux']);
    expect(exit.code).toBe(0);
    await expect.poll(async () => (await t.engine.snapshot()).masters[0]?.state, { timeout: 5_000 }).toBe('closed');
    await expect.poll(() => stat(sock).then(() => 'there', () => 'gone')).toBe('gone');
  });

  it('replaces a stale socket from a crashed run, and never takes a live one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hitch-sockets-'));
    const path = controlPathFor(dir, { hostname: sshd.address, port: sshd.port, user: sshd.user, jump: null });
    // Another process listening at the path: killed at once (a crash), or left running.
    const listenThenDie = (die: boolean): Promise<ReturnType<typeof started>> =>
      new Promise((resolve) => {
        const then = die ? "process.kill(process.pid, 'SIGKILL')" : "console.log('up')";
        const script = `require('net').createServer((s) => s.on('error', () => {}).end('live\\n')).listen(${JSON.stringify(path)}, () => { ${then} })`;
        const p = started(process.execPath, ['-e', script]);
        if (die) void p.done.then(() => resolve(p));
        else p.child.stdout?.once('data', () => resolve(p));
      });
    try {
      await chmod(dir, 0o700);
        await listenThenDie(true);
      expect((await stat(path)).isSocket()).toBe(true); // left behind
      const a = await testEngine(sshd.clientConfig('mux'), { controlSocketDir: dir });
      try {
        await a.engine.connect('mux');
        await expect.poll(() => controlPath(a), { timeout: 5_000 }).toBe(path);
        expect((await runStock('ssh', [...muxOptions(path), 'mux', 'echo replaced'])).stdout).toBe('replaced\n');
      } finally {
        await a.close();
      }
      await expect.poll(() => stat(path).then(() => 'there', () => 'gone')).toBe('gone');

      const live = await listenThenDie(false);
      const b = await testEngine(sshd.clientConfig('mux'), { controlSocketDir: dir });
      try {
        await b.engine.connect('mux');
        await sleep(300);
        expect(await controlPath(b)).toBeNull();
        expect(b.logLines.some((l) => l.includes('not replacing it'))).toBe(true);
        const answer = await new Promise<string>((resolve, reject) => connect(path).once('data', (d) => resolve(d.toString())).once('error', reject));
        expect(answer).toBe('live\n');
      } finally {
        await b.close();
        live.child.kill();
        await live.done;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

});

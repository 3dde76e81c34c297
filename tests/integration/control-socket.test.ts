// Stock OpenSSH clients riding Hitch's master through its control socket (OpenSSH's mux
// protocol): ssh with commands, terminals, forwards and -W; scp, sftp, rsync and git; many at
// once; killed clients, strangers and garbage. Against a real sshd, which must see one login.
import { execFile } from 'node:child_process';
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
    // A command killed by a signal: OpenSSH's master sends no exit status, so the client says 255.
    expect((await ssh(['mux', 'kill -TERM $$'])).code).toBe(255);
    const big = await ssh(['mux', 'head -c 3000000 /dev/zero']);
    expect(big.stdout.length).toBe(3_000_000);

    const external = (await sessions()).filter((s) => s.external);
    expect(external.map((s) => s.command)).toEqual(expect.arrayContaining(['echo out; echo err >&2; exit 3', 'tr a-z A-Z']));
    expect(external.every((s) => s.masterId === external[0]!.masterId && s.hostId === 'mux')).toBe(true);
    expect(external.find((s) => s.command === 'tr a-z A-Z')).toMatchObject({ state: 'closed', exitCode: 0 });
    expect(t.events.some((e) => e.event === 'session.data' && external.some((s) => s.id === e.payload.sessionId))).toBe(false);
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
      expect((await sessions()).some((s) => s.external && s.command === 'sftp (subsystem)')).toBe(true);
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
    await expect.poll(async () => (await sessions()).find((s) => s.command === 'sleep 32')?.state, { timeout: 8_000 }).toBe('closed');
    if (asRoot) await expect.poll(async () => (await run('pgrep', ['-u', TEST_USER, '-f', '^sleep 32$']).catch(() => ({ stdout: '' }))).stdout, { timeout: 8_000 }).toBe('');
    expect((await ssh(['mux', 'echo still-here'])).stdout).toBe('still-here\n');
    expect((await t.engine.snapshot()).masters[0]?.state).toBe('ready');
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

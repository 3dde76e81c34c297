// `hitch forward`, run as a real process (out/main/cli.js) against a `hitch daemon` and a real
// sshd, as a script would: -L/-R/-D open forwards that outlive the command, --list shows them,
// --cancel ends them by id or by spec, --json prints the checked shape, bad specs and taken
// ports fail with one line and the documented status.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardOutputSchema } from '../../main/cli/schemas';
import { CLI, ensureBuilt, hitchEnv } from '../fixtures/built';
import { freePort, startSshd, type Sshd } from '../fixtures/sshd';
import { httpGet } from '../fixtures/http-get';

interface Ran {
  status: number | null;
  out: string;
  stderr: string;
}

describe('hitch forward', () => {
  let sshd: Sshd;
  let dir: string;
  let env: Record<string, string>;
  let daemon: ChildProcess;
  let http: HttpServer;
  let httpPort: number;

  const hitch = (args: string[]): Promise<Ran> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('close', (status) => resolve({ status, out, stderr }));
    });
  const json = async (args: string[]): Promise<ReturnType<typeof forwardOutputSchema.parse>> => {
    const r = await hitch([...args, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return forwardOutputSchema.parse(JSON.parse(r.out));
  };

  beforeAll(async () => {
    await ensureBuilt();
    sshd = await startSshd();
    dir = await mkdtemp(join(tmpdir(), 'hitch-fwcli-'));
    await writeFile(join(dir, 'ssh_config'), sshd.clientConfig('box'));
    env = hitchEnv(dir);
    http = createHttpServer((req, res) => res.end(`served ${req.url}`));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    httpPort = (http.address() as { port: number }).port;
    daemon = spawn(process.execPath, [CLI, 'daemon', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      daemon.stdout!.once('data', () => resolve());
      daemon.once('exit', (code) => reject(new Error(`daemon exited with ${code}`)));
    });
  }, 120_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
    http?.close();
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('opens local and remote forwards in one call; they carry traffic after the command exits', async () => {
    const port = await freePort();
    const back: Server = createServer((s) => s.end('back here\n'));
    await new Promise<void>((r) => back.listen(0, '127.0.0.1', r));
    const backPort = (back.address() as { port: number }).port;
    try {
      const r = await hitch(['forward', 'box', '-L', `${port}:127.0.0.1:${httpPort}`, '-R', `0:127.0.0.1:${backPort}`]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const lines = r.out.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(new RegExp(`^f\\d+: local forward localhost:${port} -> 127\\.0\\.0\\.1:${httpPort}$`));
      const allocated = /^Allocated port (\d+) for remote forward to 127\.0\.0\.1:(\d+)$/.exec(lines[1]!);
      expect(allocated?.[2]).toBe(String(backPort));
      expect(await httpGet(port, '/after-exit')).toBe('served /after-exit');

      const listed = await json(['forward', 'box', '--list']);
      expect(listed.host).toBe('box');
      expect(listed.forwards.map((f) => [f.kind, f.state, f.origin, f.saved])).toEqual([
        ['local', 'active', 'hitch', false],
        ['remote', 'active', 'hitch', false],
      ]);
      expect(listed.forwards[1]!.boundPort).toBe(Number(allocated![1]));
      const text = await hitch(['forward', 'box', '--list']);
      expect(text.out.split('\n')[0]).toMatch(/^ID\s+KIND\s+LISTEN\s+TARGET\s+STATE\s+CONNECTIONS\s+BYTES IN\/OUT\s+SAVED\s+ORIGIN$/);
      expect(text.out).toContain(`localhost:${port}`);

      // Cancelled by the spec it was opened with, then by id.
      const bySpec = await json(['forward', 'box', '--cancel', '-L', `${port}:127.0.0.1:${httpPort}`]);
      expect(bySpec.forwards.map((f) => f.id)).toEqual([listed.forwards[0]!.id]);
      await expect(httpGet(port, '/gone')).rejects.toThrow(/ECONNREFUSED/);
      const byId = await hitch(['forward', 'box', '--cancel', listed.forwards[1]!.id]);
      expect(byId).toMatchObject({ status: 0, out: `${listed.forwards[1]!.id}: cancelled\n` });
      expect((await json(['forward', 'box', '--list'])).forwards).toEqual([]);
    } finally {
      back.close();
    }
  });

  it('--json prints the forwards opened; -D with --save is kept with the host', async () => {
    const port = await freePort();
    const opened = await json(['forward', 'box', '-D', `127.0.0.1:${port}`, '--save']);
    expect(opened.forwards).toHaveLength(1);
    expect(opened.forwards[0]).toMatchObject({ kind: 'dynamic', bindAddress: '127.0.0.1', listenPort: port, boundPort: port, state: 'active', saved: true, connectHost: null });
    const cancelled = await json(['forward', 'box', `--cancel=${opened.forwards[0]!.id}`]);
    expect(cancelled.forwards[0]!.id).toBe(opened.forwards[0]!.id);
  });

  it('a taken port fails with one line and status 1, and leaves nothing behind', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const free = await freePort();
    try {
      const r = await hitch(['forward', 'box', '-L', `${free}:127.0.0.1:${httpPort}`, '-L', `${port}:127.0.0.1:${httpPort}`]);
      expect(r.status).toBe(1);
      expect(r.out).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^hitch: Cannot listen on 127\\.0\\.0\\.1 port ${port}: the port is in use already.*\\n$`));
      expect(r.stderr.split('\n')).toHaveLength(2);
      // All or nothing: the first one, set up before the failure, went again.
      expect((await json(['forward', 'box', '--list'])).forwards).toEqual([]);
    } finally {
      taken.close();
    }
  });

  it('refuses bad specs and usage mistakes with status 2, before anything is sent', async () => {
    for (const args of [
      ['forward', 'box', '-L', '8080:localhost'],
      ['forward', 'box', '-L', '99999:localhost:80'],
      ['forward', 'box', '-R', '8080:bad host:80'],
      ['forward', 'box', '-D', '1:2:3'],
      ['forward', 'box', '-L', '[::1:8080:x:80'],
      ['forward', 'box'],
      ['forward', 'box', '--list', '-L', '1:a:2'],
      ['forward', 'box', '--cancel'],
      ['forward', 'box', '--cancel', 'nope'],
      ['ls', '-L', '1:a:2'],
    ]) {
      const r = await hitch(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^hitch: .*\n$/);
    }
    expect((await hitch(['forward', 'box', '--cancel', 'f999'])).status).toBe(1);
    expect((await json(['forward', 'box', '--list'])).forwards).toEqual([]);
  });

  it('takes IPv6 addresses in brackets', async () => {
    const port = await freePort();
    const opened = await json(['forward', 'box', '-L', `[::1]:${port}:127.0.0.1:${httpPort}`]);
    expect(opened.forwards[0]).toMatchObject({ bindAddress: '::1', listenPort: port });
    const text = await hitch(['forward', 'box', '--list']);
    expect(text.out).toContain(`[::1]:${port}`);
    await json(['forward', 'box', '--cancel', '-L', `[::1]:${port}:127.0.0.1:${httpPort}`]);
  });
});

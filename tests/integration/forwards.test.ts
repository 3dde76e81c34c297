// Port forwards over the master, against a real sshd: local, remote and dynamic (SOCKS5) ones
// carry real traffic, a taken port is a clear error, stock clients' `ssh -O forward` shows in
// the same list, counters move; saved forwards come back after the master reconnects and after
// a new engine on the same data directory connects. The server sees one login for it all.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../main/engine/engine';
import { createLogger } from '../../main/engine/log';
import type { ForwardView, HitchEvent } from '../../preload/api';
import { testEngine, testKeychain, type TestEngine } from '../fixtures/engine';
import { freePort, startSshd, type Sshd } from '../fixtures/sshd';
import { muxOptions, runStock } from '../fixtures/stock-clients';
import { behindProxy, startProxy, type TcpProxy } from '../fixtures/tcp-proxy';
import { httpGet } from '../fixtures/http-get';

/** An HTTP server on this machine's loopback: "the remote side" (the test server is here too). */
async function httpServer(body: string): Promise<{ server: HttpServer; port: number }> {
  const server = createHttpServer((req, res) => res.end(`${body} ${req.url}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** A GET through a SOCKS5 proxy (CONNECT to 127.0.0.1:target, no authentication), written by hand. */
function socks5Get(proxyPort: number, targetPort: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(proxyPort, '127.0.0.1');
    let stage = 0;
    let buf = Buffer.alloc(0);
    let response = '';
    s.on('data', (d: Buffer) => {
      if (stage === 2) {
        response += d.toString();
        return;
      }
      buf = Buffer.concat([buf, d]);
      if (stage === 0 && buf.length >= 2) {
        if (buf[0] !== 5 || buf[1] !== 0) return reject(new Error(`SOCKS5 method refused: ${[...buf]}`));
        buf = buf.subarray(2);
        stage = 1;
        const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
        req.writeUInt16BE(targetPort, 8);
        s.write(req);
      }
      if (stage === 1 && buf.length >= 10) {
        if (buf[1] !== 0) return reject(new Error(`SOCKS5 CONNECT refused: reply ${buf[1]}`));
        response = buf.subarray(10).toString();
        stage = 2;
        s.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
      }
    });
    s.on('end', () => resolve(response));
    s.on('error', reject);
    s.write(Buffer.from([5, 1, 0]));
  });
}

/** What a TCP service sends first (here: the whole answer, then the end). */
function readAll(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => (text += d.toString()));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

async function forward(t: TestEngine, id: string): Promise<ForwardView | undefined> {
  return (await t.engine.listForwards()).find((f) => f.id === id);
}

let http: { server: HttpServer; port: number };
let reply: Server;
let replyPort: number;

beforeAll(async () => {
  http = await httpServer('hello from the remote side');
  // The "local" end a remote forward reaches: a server on this computer.
  reply = createServer((s) => s.end('from this computer\n'));
  await new Promise<void>((r) => reply.listen(0, '127.0.0.1', r));
  replyPort = (reply.address() as { port: number }).port;
});

afterAll(async () => {
  http?.server.close();
  reply?.close();
});

describe('forwards on one master', () => {
  let sshd: Sshd;
  let t: TestEngine;
  let socketRoot: string;

  beforeAll(async () => {
    sshd = await startSshd();
    socketRoot = await mkdtemp(join(tmpdir(), 'hitch-fw-'));
    t = await testEngine(sshd.clientConfig('web1'), { processTrees: false, controlSocketDir: join(socketRoot, 's') });
  });

  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
    if (socketRoot) await rm(socketRoot, { recursive: true, force: true });
  });

  it('a local forward carries an HTTP request to a server on the remote side, and its counters move', async () => {
    // Not connected yet: opening the forward connects the master.
    const f = await t.engine.openForward({ hostId: 'web1', kind: 'local', listenPort: 0, connectHost: '127.0.0.1', connectPort: http.port });
    expect(f).toMatchObject({ kind: 'local', bindAddress: 'localhost', state: 'active', origin: 'hitch', saved: false, hostId: 'web1', connections: 0, bytesIn: 0 });
    expect(f.boundPort).toBeGreaterThan(0);
    expect(await httpGet(f.boundPort!, '/through-local')).toBe('hello from the remote side /through-local');
    await expect.poll(async () => (await forward(t, f.id))?.bytesIn ?? 0).toBeGreaterThan(100);
    const after = (await forward(t, f.id))!;
    expect(after.bytesOut).toBeGreaterThan(20);
    expect(after.totalConnections).toBe(1);
    await expect.poll(async () => (await forward(t, f.id))?.connections).toBe(0);
    // The clients heard of it: the forward's events carry the counters.
    const events = t.events.flatMap((e) => (e.event === 'forward.changed' && e.payload.id === f.id ? [e.payload] : []));
    expect(events.at(-1)!.bytesIn).toBe((await forward(t, f.id))!.bytesIn);
    // Loopback only: the listener is not on every address.
    await t.engine.cancelForward(f.id);
    expect(t.events.some((e) => e.event === 'forward.removed' && e.payload.forwardId === f.id)).toBe(true);
    expect(await forward(t, f.id)).toBeUndefined();
    await expect(httpGet(f.boundPort!, '/gone')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('a cancelled forward takes no new connections; the ones it carries go on', async () => {
    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    try {
      const f = await t.engine.openForward({ hostId: 'web1', kind: 'local', listenPort: 0, connectHost: '127.0.0.1', connectPort: (echo.address() as { port: number }).port });
      const sock = connect(f.boundPort!, '127.0.0.1');
      const echoed = (text: string): Promise<string> =>
        new Promise((resolve) => {
          sock.once('data', (d) => resolve(d.toString()));
          sock.write(text);
        });
      expect(await echoed('before')).toBe('before');
      await t.engine.cancelForward(f.id); // answers while the connection is still carried
      expect(await echoed('after')).toBe('after');
      await expect(httpGet(f.boundPort!, '/')).rejects.toThrow(/ECONNREFUSED/);
      sock.destroy();
    } finally {
      echo.close();
    }
  });

  it('a dynamic forward carries a SOCKS5 request', async () => {
    const f = await t.engine.openForward({ hostId: 'web1', kind: 'dynamic', listenPort: 0 });
    expect(f).toMatchObject({ kind: 'dynamic', connectHost: null, connectPort: null, state: 'active' });
    const response = await socks5Get(f.boundPort!, http.port, '/through-socks');
    expect(response).toMatch(/^HTTP\/1\.[01] 200/);
    expect(response).toContain('hello from the remote side /through-socks');
    await t.engine.cancelForward(f.id);
  });

  it('a remote forward carries a connection from the server side back to a server here', async () => {
    const f = await t.engine.openForward({ hostId: 'web1', kind: 'remote', listenPort: 0, connectHost: '127.0.0.1', connectPort: replyPort });
    expect(f).toMatchObject({ kind: 'remote', state: 'active' });
    expect(f.boundPort).toBeGreaterThan(0);
    // The server listens on its loopback, which is this machine's in this test.
    expect(await readAll(f.boundPort!)).toBe('from this computer\n');
    // Towards the server's side: out.
    await expect.poll(async () => (await forward(t, f.id))?.bytesOut).toBe('from this computer\n'.length);
    await t.engine.cancelForward(f.id);
    await expect(readAll(f.boundPort!)).rejects.toThrow(/ECONNREFUSED|ECONNRESET/);
  });

  it('a port in use is a port-in-use error naming it, and nothing is added', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const before = (await t.engine.listForwards()).length;
      await expect(t.engine.openForward({ hostId: 'web1', kind: 'local', listenPort: port, connectHost: '127.0.0.1', connectPort: http.port })).rejects.toMatchObject({
        code: 'port-in-use',
        message: expect.stringContaining(`127.0.0.1 port ${port}`),
      });
      expect((await t.engine.listForwards()).length).toBe(before);
    } finally {
      taken.close();
    }
  });

  it('a forward opened by a stock client (ssh -O forward) shows in the same list, origin control-socket', async () => {
    const sock = (await t.engine.snapshot()).masters[0]!.controlPath!;
    expect(sock).toBeTruthy();
    const port = await freePort();
    const spec = `127.0.0.1:${port}:127.0.0.1:${http.port}`;
    const r = await runStock('ssh', [...muxOptions(sock), '-O', 'forward', '-L', spec, 'web1']);
    expect(r.code, r.stderr).toBe(0);
    const listed = (await t.engine.listForwards('web1')).find((f) => f.origin === 'control-socket');
    expect(listed).toMatchObject({ kind: 'local', bindAddress: '127.0.0.1', listenPort: port, connectHost: '127.0.0.1', connectPort: http.port, state: 'active', hostId: 'web1' });
    expect(await httpGet(port, '/stock')).toBe('hello from the remote side /stock');
    await expect.poll(async () => (await forward(t, listed!.id))?.totalConnections).toBe(1);
    // It cannot be saved (it ends with the master), and `ssh -O cancel` removes it from the list.
    await expect(t.engine.saveForward(listed!.id, true)).rejects.toMatchObject({ code: 'bad-request' });
    expect((await runStock('ssh', [...muxOptions(sock), '-O', 'cancel', '-L', spec, 'web1'])).code).toBe(0);
    expect(await forward(t, listed!.id)).toBeUndefined();
  });

  it('all of it over one login', async () => {
    expect(await sshd.acceptedLogins()).toBe(1);
  });
});

describe('saved forwards', () => {
  let sshd: Sshd;
  let proxy: TcpProxy;
  let t: TestEngine;

  beforeAll(async () => {
    sshd = await startSshd();
    proxy = await startProxy({ targetPort: sshd.port });
    t = await testEngine(await behindProxy(sshd, proxy, 'web1'), { processTrees: false, controlSocketDir: null });
  });

  afterAll(async () => {
    await t?.close();
    await proxy?.close();
    await sshd?.stop();
  });

  it('come back after the master reconnects; unsaved ones too, listeners kept bound', async () => {
    const localPort = await freePort();
    const remotePort = await freePort();
    const local = await t.engine.openForward({ hostId: 'web1', kind: 'local', listenPort: localPort, connectHost: '127.0.0.1', connectPort: http.port, save: true });
    const remote = await t.engine.openForward({ hostId: 'web1', kind: 'remote', listenPort: remotePort, connectHost: '127.0.0.1', connectPort: replyPort, save: true });
    const unsaved = await t.engine.openForward({ hostId: 'web1', kind: 'dynamic', listenPort: 0 });
    expect(local.saved && remote.saved).toBe(true);
    const file = JSON.parse(await readFile(join(t.dir, 'forwards.json'), 'utf8'));
    expect(file.hosts.web1).toHaveLength(2);

    const seen: HitchEvent[] = [];
    const off = t.engine.onEvent((e) => seen.push(e));
    proxy.resetAll();
    // Waiting while the master is away, then active again on its new connection.
    await expect.poll(() => seen.some((e) => e.event === 'forward.changed' && e.payload.id === remote.id && e.payload.state === 'waiting'), { timeout: 10_000 }).toBe(true);
    await expect.poll(async () => (await t.engine.listForwards()).map((f) => f.state), { timeout: 15_000 }).toEqual(['active', 'active', 'active']);
    off();
    expect(await httpGet(localPort, '/after-reconnect')).toBe('hello from the remote side /after-reconnect');
    expect(await readAll(remotePort)).toBe('from this computer\n');
    expect((await socks5Get((await forward(t, unsaved.id))!.boundPort!, http.port, '/socks-again'))).toContain('/socks-again');
    expect(await sshd.acceptedLogins()).toBe(2); // the first login and the reconnect
  });

  it('a connection arriving while the master reconnects waits for it, then goes through', async () => {
    const [local] = await t.engine.listForwards();
    // The network goes silent and the master's connection is reset: its reconnect hangs.
    proxy.blackhole(true);
    proxy.resetAll();
    await expect.poll(async () => (await forward(t, local!.id))?.state).toBe('waiting');
    const answer = httpGet(local!.listenPort, '/while-away');
    await new Promise((r) => setTimeout(r, 300));
    proxy.blackhole(false);
    expect(await answer).toBe('hello from the remote side /while-away');
    await expect.poll(async () => (await t.engine.listForwards()).every((f) => f.state === 'active')).toBe(true);
  });

  it('a master closed by the person ends unsaved forwards; saved ones wait, their ports let go, and come back', async () => {
    const [local] = await t.engine.listForwards();
    expect(local).toMatchObject({ kind: 'local', saved: true });
    await t.engine.disconnect('web1');
    const left = await t.engine.listForwards();
    expect(left.map((f) => [f.kind, f.state, f.saved])).toEqual([
      ['local', 'waiting', true],
      ['remote', 'waiting', true],
    ]);
    await expect(httpGet(local!.listenPort, '/closed')).rejects.toThrow(/ECONNREFUSED/);
    await t.engine.connect('web1');
    await expect.poll(async () => (await t.engine.listForwards()).map((f) => f.state)).toEqual(['active', 'active']);
    expect(await httpGet(local!.listenPort, '/again')).toBe('hello from the remote side /again');
  });

  it('a forward asked for any port keeps the port it got through a reconnect and a Disconnect', async () => {
    const remote = await t.engine.openForward({ hostId: 'web1', kind: 'remote', listenPort: 0, connectHost: '127.0.0.1', connectPort: replyPort, save: true });
    const local = await t.engine.openForward({ hostId: 'web1', kind: 'local', listenPort: 0, connectHost: '127.0.0.1', connectPort: http.port, save: true });
    const ports = async (): Promise<(number | null | undefined)[]> => {
      const listed = await t.engine.listForwards();
      return [remote.id, local.id].map((id) => listed.find((f) => f.id === id)?.boundPort);
    };
    const first = [remote.boundPort, local.boundPort];
    expect(first.every((p) => typeof p === 'number' && p > 0)).toBe(true);
    try {
      const seen: HitchEvent[] = [];
      const off = t.engine.onEvent((e) => seen.push(e));
      proxy.resetAll(); // the server's listen ends with its connection, and is asked for again
      await expect.poll(() => seen.some((e) => e.event === 'forward.changed' && e.payload.id === remote.id && e.payload.state === 'waiting'), { timeout: 10_000 }).toBe(true);
      off();
      await expect.poll(async () => (await t.engine.listForwards()).every((f) => f.state === 'active'), { timeout: 15_000 }).toBe(true);
      expect(await ports()).toEqual(first);
      expect(await readAll(first[0]!)).toBe('from this computer\n');

      await t.engine.disconnect('web1'); // both ports let go
      await t.engine.connect('web1');
      await expect.poll(async () => (await t.engine.listForwards()).every((f) => f.state === 'active'), { timeout: 15_000 }).toBe(true);
      expect(await ports()).toEqual(first);
      expect(await httpGet(first[1]!, '/same-port')).toBe('hello from the remote side /same-port');
    } finally {
      await t.engine.cancelForward(remote.id);
      await t.engine.cancelForward(local.id);
    }
  });

  it('a forward asked for any port whose port was taken meanwhile takes another, and says so', async () => {
    const remote = await t.engine.openForward({ hostId: 'web1', kind: 'remote', listenPort: 0, connectHost: '127.0.0.1', connectPort: replyPort, save: true });
    const port = remote.boundPort!;
    await t.engine.disconnect('web1'); // the server lets the port go, and something else takes it
    const squatter = createServer();
    const second = createServer();
    // Once the server's process for the old connection has ended and let the port go.
    await expect
      // Every address (IPv4 and IPv6): sshd binds what loopback it can, and one would do for it.
      .poll(() => new Promise<boolean>((resolve) => squatter.once('error', () => resolve(false)).listen(port, () => resolve(true))), { timeout: 10_000 })
      .toBe(true);
    try {
      await t.engine.connect('web1');
      await expect.poll(async () => (await forward(t, remote.id))?.state, { timeout: 15_000 }).toBe('active');
      const now = (await forward(t, remote.id))!.boundPort!;
      expect(now).not.toBe(port);
      expect(await readAll(now)).toBe('from this computer\n');
      expect(t.logLines.some((l) => l.includes('forward port taken: another one is used') && l.includes(String(port)))).toBe(true);

      // Again, and the connection is reset while it is still trying its port: it is set up on the next one.
      await t.engine.disconnect('web1');
      await expect
        .poll(() => new Promise<boolean>((resolve) => second.once('error', () => resolve(false)).listen(now, () => resolve(true))), { timeout: 10_000 })
        .toBe(true);
      await t.engine.connect('web1');
      await new Promise((r) => setTimeout(r, 300)); // within its second of tries
      expect((await forward(t, remote.id))?.state).toBe('waiting');
      proxy.resetAll();
      await expect.poll(async () => (await forward(t, remote.id))?.state, { timeout: 15_000 }).toBe('active');
      const third = (await forward(t, remote.id))!.boundPort!;
      expect([port, now]).not.toContain(third);
      expect(await readAll(third)).toBe('from this computer\n');
    } finally {
      squatter.close();
      second.close();
      await t.engine.cancelForward(remote.id);
    }
  });

  it('come back when a new engine on the same data directory connects', async () => {
    // One asked for any port: the file keeps the port it got, and the new engine asks for it again.
    const any = await t.engine.openForward({ hostId: 'web1', kind: 'remote', listenPort: 0, connectHost: '127.0.0.1', connectPort: replyPort, save: true });
    await expect
      .poll(async () => (JSON.parse(await readFile(join(t.dir, 'forwards.json'), 'utf8')).hosts.web1 as { listenPort: number; lastPort?: number }[]).find((f) => f.listenPort === 0)?.lastPort)
      .toBe(any.boundPort);
    const before = await t.engine.listForwards();
    expect(before).toHaveLength(3);
    await t.engine.shutdown();
    const engine = new Engine({
      sshConfigPath: t.configPath,
      sshBinary: 'ssh',
      dataDir: t.dir,
      knownHostsPath: join(t.dir, 'known_hosts'),
      authSock: undefined,
      secrets: testKeychain(),
      idleTimeoutMs: null,
      processTrees: false,
      controlSocketDir: null,
      durableShells: false,
      log: createLogger(() => undefined, 'error'),
    });
    try {
      expect(await engine.savedForwardHosts()).toEqual(['web1']);
      // Listed from the start, waiting for the master.
      const listed = await engine.listForwards();
      expect(listed.map((f) => [f.kind, f.listenPort, f.state, f.saved])).toEqual(before.map((f) => [f.kind, f.listenPort, 'waiting', true]));
      await engine.connect('web1');
      await expect.poll(async () => (await engine.listForwards()).map((f) => f.state)).toEqual(['active', 'active', 'active']);
      expect(await httpGet(before[0]!.listenPort, '/new-engine')).toBe('hello from the remote side /new-engine');
      expect(await readAll(before[1]!.listenPort)).toBe('from this computer\n');
      expect((await engine.listForwards())[2]!.boundPort).toBe(any.boundPort);
      expect(await readAll(any.boundPort!)).toBe('from this computer\n');
      // Unsaved, then cancelled: forgotten in the file too.
      const [l, r, a] = await engine.listForwards();
      await engine.saveForward(l!.id, false);
      await engine.cancelForward(r!.id);
      await engine.cancelForward(a!.id);
      expect(JSON.parse(await readFile(join(t.dir, 'forwards.json'), 'utf8')).hosts).toEqual({});
    } finally {
      await engine.shutdown();
    }
  });

  it('a malformed saved forwards file is kept aside and reported; the engine starts without it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hitch-fwfile-'));
    try {
      await writeFile(join(dir, 'forwards.json'), '{"version": 1, "hosts": {"web1": [{"kind": "sideways"}]}}');
      const lines: string[] = [];
      const engine = new Engine({
        sshConfigPath: t.configPath,
        sshBinary: 'ssh',
        dataDir: dir,
        knownHostsPath: join(dir, 'known_hosts'),
        authSock: undefined,
        secrets: testKeychain(),
        processTrees: false,
        controlSocketDir: null,
        log: createLogger((line) => lines.push(line), 'info'),
      });
      expect(await engine.listForwards()).toEqual([]);
      expect(lines.join('\n')).toMatch(/Saved forwards file .* could not be used .*kept as .*forwards\.json\.corrupt-/);
      await engine.shutdown();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// The web host's file routes (PUT /files/upload, GET /files/download) are as reachable from
// any page the person's browser opens as the API is: everything but the Hitch page's own
// requests is refused before it reaches the engine, and what the page asks for streams
// through the host's master with the engine's errors as HTTP statuses the page can act on.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localApi } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import { contentDisposition, type FileStreams } from '../../main/web/file-endpoints';
import { relayedFileStreams } from '../../main/web/relayed-files';
import { startWebHost, type WebHost } from '../../main/web/server';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { behindProxy, startProxy, type TcpProxy } from '../fixtures/tcp-proxy';
import { testEngine, type TestEngine } from '../fixtures/engine';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function send(port: number, method: string, path: string, opts: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const errorCode = (a: Answer): unknown => (JSON.parse(a.body.toString()) as { error: { code: string } }).error.code;

describe('web host file routes: refusals', () => {
  let t: TestEngine;
  let host: WebHost;
  let base: string;
  /** Every request that got through to the engine's streams. */
  const reached: string[] = [];
  const recorder: FileStreams = {
    uploadFromStream: (o) => (reached.push(`upload ${o.remotePath}`), Promise.reject(new Error('not in this test'))),
    downloadToStream: (o) => (reached.push(`download ${o.remotePath}`), Promise.reject(new Error('not in this test'))),
    cancelTransfer: () => undefined,
    onEvent: () => () => undefined,
  };
  const origin = (): string => `http://127.0.0.1:${host.port}`;
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${host.token}`, origin: origin() });

  beforeAll(async () => {
    t = await testEngine('Host alpha\n  HostName 127.0.0.1\n');
    base = await mkdtemp(join(tmpdir(), 'hitch-static-'));
    const staticDir = join(base, 'renderer');
    await mkdir(staticDir);
    await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hitch</title>');
    const log = t.engine.options.log;
    host = await startWebHost({ api: localApi(createRouter(t.engine, log)), staticDir, log, files: () => recorder });
  });
  afterAll(async () => {
    await host?.close();
    await t?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('refuses a download without the token, or with a wrong one', async () => {
    expect((await send(host.port, 'GET', '/files/download?host=alpha&path=/etc/hostname')).status).toBe(401);
    expect((await send(host.port, 'GET', `/files/download?host=alpha&path=/etc/hostname&token=${'x'.repeat(32)}`)).status).toBe(401);
    expect((await send(host.port, 'GET', '/files/download?host=alpha&path=/etc/hostname', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('refuses an upload without the token', async () => {
    const body = Buffer.from('hello');
    const res = await send(host.port, 'PUT', '/files/upload?host=alpha&path=/tmp/x', { headers: { origin: origin(), 'content-length': '5' }, body });
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('forbidden');
  });

  it('refuses a foreign Host header (DNS rebinding) and a foreign Origin, even with the token', async () => {
    const rebound = await send(host.port, 'GET', `/files/download?host=alpha&path=/x&token=${host.token}`, { headers: { host: `evil.example:${host.port}` } });
    expect(rebound.status).toBe(421);
    const foreign = await send(host.port, 'PUT', '/files/upload?host=alpha&path=/tmp/x', {
      headers: { ...auth(), origin: 'http://evil.example', 'content-length': '1' },
      body: Buffer.from('x'),
    });
    expect(foreign.status).toBe(403);
    const crossSite = await send(host.port, 'GET', `/files/download?host=alpha&path=/x&token=${host.token}`, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
  });

  it('refuses a query that does not fit, naming the parameter', async () => {
    const cases = [
      '/files/download?path=/x', // no host
      '/files/download?host=alpha', // no path
      '/files/download?host=al%20pha&path=/x', // a host alias has no spaces
      '/files/download?host=alpha&path=/x%00y', // NUL in a path
      '/files/download?host=alpha&path=/x&path=/y', // twice
      '/files/download?host=alpha&path=/x&extra=1', // unknown parameter
    ];
    for (const path of cases) {
      const res = await send(host.port, 'GET', `${path}&token=${host.token}`);
      expect(res.status, path).toBe(400);
      expect(errorCode(res), path).toBe('bad-request');
    }
    const badMode = await send(host.port, 'PUT', '/files/upload?host=alpha&path=/tmp/x&ifExists=overwrite', { headers: { ...auth(), 'content-length': '1' }, body: Buffer.from('x') });
    expect(badMode.status).toBe(400);
    expect(badMode.body.toString()).toContain('ifExists');
  });

  it('refuses the wrong method, and an upload without a Content-Length', async () => {
    expect((await send(host.port, 'POST', `/files/download?host=alpha&path=/x&token=${host.token}`)).status).toBe(405);
    expect((await send(host.port, 'GET', `/files/upload?host=alpha&path=/x&token=${host.token}`)).status).toBe(405);
    const chunked = await send(host.port, 'PUT', '/files/upload?host=alpha&path=/tmp/x', { headers: { ...auth(), 'transfer-encoding': 'chunked' }, body: Buffer.from('x') });
    expect(chunked.status).toBe(411);
  });

  it('lets none of those reach the engine, and never logs the token', () => {
    expect(reached).toEqual([]);
    expect(t.logLines.join('\n')).not.toContain(host.token);
    expect(t.logLines.some((l) => l.includes('web host refused file request'))).toBe(true);
  });

  it('passes the page\'s own request on, and answers the engine\'s failure as an error', async () => {
    const res = await send(host.port, 'GET', `/files/download?host=alpha&path=/srv/a&token=${host.token}`, { headers: { 'sec-fetch-site': 'same-origin' } });
    expect(res.status).toBe(500);
    expect(reached).toEqual(['download /srv/a']);
  });

  it('names the file for the browser, in plain ASCII and exactly', () => {
    expect(contentDisposition('report.pdf')).toBe(`attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`);
    expect(contentDisposition('grüße "x".txt')).toBe(`attachment; filename="gr__e _x_.txt"; filename*=UTF-8''gr%C3%BC%C3%9Fe%20%22x%22.txt`);
    expect(contentDisposition('a/b\r\nc')).toBe(`attachment; filename="a_b__c"; filename*=UTF-8''a_b__c`);
  });
});

describe('web host file routes: without file streams', () => {
  it('says that uploads and downloads are not available, rather than failing silently', async () => {
    const t = await testEngine('Host alpha\n  HostName 127.0.0.1\n');
    const base = await mkdtemp(join(tmpdir(), 'hitch-static-'));
    const log = t.engine.options.log;
    const host = await startWebHost({ api: localApi(createRouter(t.engine, log)), staticDir: base, log, files: () => null });
    try {
      const res = await send(host.port, 'GET', `/files/download?host=alpha&path=/x&token=${host.token}`);
      expect(res.status).toBe(501);
      expect(res.body.toString()).toMatch(/hitch cp/);
    } finally {
      await host.close();
      await t.close();
      await rm(base, { recursive: true, force: true });
    }
  });
});


describe('web host file routes: through a real master', () => {
  let sshd: Sshd;
  let t: TestEngine;
  let host: WebHost;
  let base: string;
  /** This run's folder in the test user's home on the host (the same machine: checked on disk). */
  let remote: string;
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${host.token}`, origin: `http://127.0.0.1:${host.port}` });
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

  beforeAll(async () => {
    sshd = await startSshd();
    t = await testEngine(sshd.clientConfig('filehost'));
    base = await mkdtemp(join(tmpdir(), 'hitch-static-'));
    const log = t.engine.options.log;
    host = await startWebHost({ api: localApi(createRouter(t.engine, log)), staticDir: base, log, files: () => t.engine });
    remote = (await t.engine.makeDirectory('filehost', `hitch-web-${randomBytes(6).toString('hex')}`)).path;
  });
  afterAll(async () => {
    if (remote) await t?.engine.deleteFile('filehost', remote).catch(() => undefined);
    await host?.close();
    await t?.close();
    await sshd?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('uploads a body to the host and downloads it back, the same bytes, answered with the ended transfer', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const path = `${remote}/up load.bin`;
    const put = await send(host.port, 'PUT', `/files/upload?host=filehost&path=${encodeURIComponent(path)}`, {
      headers: { ...auth(), 'content-length': String(body.length) },
      body,
    });
    expect(put.status, put.body.toString()).toBe(200);
    const view = JSON.parse(put.body.toString()) as { state: string; done: number; localPath: string | null; remotePath: string; direction: string };
    expect(view).toMatchObject({ state: 'done', done: body.length, localPath: null, remotePath: path, direction: 'upload' });
    expect(sha(await readFile(path))).toBe(sha(body));

    const got = await send(host.port, 'GET', `/files/download?host=filehost&path=${encodeURIComponent(path)}&token=${host.token}`);
    expect(got.status).toBe(200);
    expect(got.headers['content-length']).toBe(String(body.length));
    expect(got.headers['content-disposition']).toBe(`attachment; filename="up load.bin"; filename*=UTF-8''up%20load.bin`);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(sha(got.body)).toBe(sha(body));
    const listed = t.engine.listTransfers().filter((x) => x.remotePath === path);
    expect(listed.map((x) => [x.direction, x.state])).toEqual([
      ['upload', 'done'],
      ['download', 'done'],
    ]);
    expect(await sshd.acceptedLogins()).toBe(1);
  });

  it("downloads by a ticket the page asked for with its token: good once, for that file, and the link never carries the token", async () => {
    const path = `${remote}/ticketed.txt`;
    await writeFile(path, 'by ticket\n');
    const asked = await send(host.port, 'POST', `/files/ticket?host=filehost&path=${encodeURIComponent(path)}`, { headers: auth() });
    expect(asked.status).toBe(200);
    const { ticket } = JSON.parse(asked.body.toString()) as { ticket: string };
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(ticket).not.toContain(host.token);

    const got = await send(host.port, 'GET', `/files/download?ticket=${ticket}`);
    expect(got.status).toBe(200);
    expect(got.body.toString()).toBe('by ticket\n');
    expect(got.headers['content-disposition']).toContain('filename="ticketed.txt"');
    // Used: the same link again is refused, and so is a made-up one, without reaching the engine.
    const again = await send(host.port, 'GET', `/files/download?ticket=${ticket}`);
    expect(again.status).toBe(401);
    expect(JSON.parse(again.body.toString()).error.message).toMatch(/used or expired/);
    expect((await send(host.port, 'GET', `/files/download?ticket=${'A'.repeat(32)}`)).status).toBe(401);
    // A ticket names its file: no other path rides on it.
    const other = JSON.parse((await send(host.port, 'POST', `/files/ticket?host=filehost&path=${encodeURIComponent(path)}`, { headers: auth() })).body.toString()) as { ticket: string };
    expect((await send(host.port, 'GET', `/files/download?ticket=${other.ticket}&path=/etc/passwd`)).status).toBe(401);
    // A download that fails before its first byte leaves its ticket good: the browser may retry it.
    const nope = JSON.parse((await send(host.port, 'POST', `/files/ticket?host=filehost&path=${encodeURIComponent(`${remote}/nope`)}`, { headers: auth() })).body.toString()) as { ticket: string };
    for (let i = 0; i < 2; i++) expect((await send(host.port, 'GET', `/files/download?ticket=${nope.ticket}`)).status).toBe(404);
    // Asking for one needs the token, in the header.
    expect((await send(host.port, 'POST', `/files/ticket?host=filehost&path=${encodeURIComponent(path)}`)).status).toBe(401);
    expect((await send(host.port, 'GET', `/files/ticket?host=filehost&path=${encodeURIComponent(path)}&token=${host.token}`)).status).toBe(405);
  });

  it('never replaces a file unless asked: 409, then replaced with ifExists=replace', async () => {
    const path = `${remote}/kept.txt`;
    const first = await send(host.port, 'PUT', `/files/upload?host=filehost&path=${encodeURIComponent(path)}`, { headers: { ...auth(), 'content-length': '6' }, body: Buffer.from('first\n') });
    expect(first.status).toBe(200);
    const again = await send(host.port, 'PUT', `/files/upload?host=filehost&path=${encodeURIComponent(path)}`, { headers: { ...auth(), 'content-length': '7' }, body: Buffer.from('second\n') });
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe('exists');
    expect(await readFile(path, 'utf8')).toBe('first\n');
    const replaced = await send(host.port, 'PUT', `/files/upload?host=filehost&path=${encodeURIComponent(path)}&ifExists=replace`, {
      headers: { ...auth(), 'content-length': '7' },
      body: Buffer.from('second\n'),
    });
    expect(replaced.status).toBe(200);
    expect(await readFile(path, 'utf8')).toBe('second\n');
  });

  it('answers a missing file with 404 and an unknown host with 404, saying which', async () => {
    const missing = await send(host.port, 'GET', `/files/download?host=filehost&path=${encodeURIComponent(`${remote}/nope`)}&token=${host.token}`);
    expect(missing.status).toBe(404);
    expect(errorCode(missing)).toBe('not-found');
    const unknown = await send(host.port, 'GET', `/files/download?host=nohost&path=/x&token=${host.token}`);
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe('unknown-host');
  });

  it('ends the transfer when the page goes away in the middle of an upload, leaving nothing under the name asked for', async () => {
    const path = `${remote}/abandoned.bin`;
    const size = 64 * 1024 * 1024;
    const req: ClientRequest = request({
      host: '127.0.0.1',
      port: host.port,
      method: 'PUT',
      path: `/files/upload?host=filehost&path=${encodeURIComponent(path)}`,
      headers: { host: `127.0.0.1:${host.port}`, ...auth(), 'content-length': String(size) },
    });
    req.on('error', () => undefined);
    req.write(randomBytes(1024 * 1024));
    // Wait until the engine has the transfer, then go away without sending the rest.
    const id = await new Promise<string>((resolve) => {
      const look = (): void => {
        const found = t.engine.listTransfers().find((x) => x.remotePath === path);
        if (found) resolve(found.id);
        else setTimeout(look, 20);
      };
      look();
    });
    req.destroy();
    await expect
      .poll(() => t.engine.listTransfers().find((x) => x.id === id)?.state, { timeout: 15_000 })
      .toMatch(/^(cancelled|failed)$/);
    // Nothing half-written under the name asked for.
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('web host file routes: across a network cut', () => {
  let sshd: Sshd;
  let proxy: TcpProxy;
  let t: TestEngine;
  let host: WebHost;
  let base: string;
  let remote: string;
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const stateOf = (id: string): string | undefined => t.engine.listTransfers().find((x) => x.id === id)?.state;
  const doneOf = (id: string): number => t.engine.listTransfers().find((x) => x.id === id)?.done ?? 0;
  /** The transfer of `path` once the engine lists it. */
  const transferOf = async (path: string, direction: 'upload' | 'download'): Promise<string> => {
    let id: string | undefined;
    await expect.poll(() => (id = t.engine.listTransfers().find((x) => x.remotePath === path && x.direction === direction && x.state !== 'done')?.id), { timeout: 30_000, interval: 10 }).toBeDefined();
    return id!;
  };
  /** Cuts every connection once `id` is under way, and lets them back once it waits for the master. */
  const cutMidway = async (id: string): Promise<void> => {
    await expect.poll(() => doneOf(id), { timeout: 60_000, interval: 20 }).toBeGreaterThan(2 * 1024 * 1024);
    proxy.resetAll();
    await expect.poll(() => stateOf(id), { timeout: 30_000, interval: 10 }).toBe('waiting');
    proxy.setDelay(0);
  };

  beforeAll(async () => {
    sshd = await startSshd();
    proxy = await startProxy({ targetPort: sshd.port });
    t = await testEngine(await behindProxy(sshd, proxy, 'cuthost'));
    base = await mkdtemp(join(tmpdir(), 'hitch-static-'));
    const log = t.engine.options.log;
    host = await startWebHost({ api: localApi(createRouter(t.engine, log)), staticDir: base, log, files: () => t.engine });
    remote = (await t.engine.makeDirectory('cuthost', `hitch-web-cut-${randomBytes(6).toString('hex')}`)).path;
  });
  afterAll(async () => {
    proxy?.setDelay(0);
    if (remote) await t?.engine.deleteFile('cuthost', remote).catch(() => undefined);
    await host?.close();
    await t?.close();
    await proxy?.close();
    await sshd?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('a page\'s upload waits out the reconnect, goes on, and is answered done with the same bytes', async () => {
    const body = randomBytes(24 * 1024 * 1024);
    const path = `${remote}/web-up.bin`;
    proxy.setDelay(20); // slow enough for the cut to land mid-way
    const answer = send(host.port, 'PUT', `/files/upload?host=cuthost&path=${encodeURIComponent(path)}`, {
      headers: { authorization: `Bearer ${host.token}`, 'content-length': String(body.length) },
      body,
    });
    const id = await transferOf(path, 'upload');
    await cutMidway(id);
    const put = await answer;
    expect(put.status, put.body.toString()).toBe(200);
    const view = JSON.parse(put.body.toString()) as { id: string; state: string; done: number; resumes: number };
    expect(view).toMatchObject({ id, state: 'done', done: body.length });
    expect(view.resumes).toBeGreaterThanOrEqual(1);
    expect(sha(await readFile(path))).toBe(sha(body));
  });

  it('a page\'s download goes on after the reconnect: the browser gets every byte, in order', async () => {
    const body = randomBytes(24 * 1024 * 1024);
    const path = `${remote}/web-down.bin`;
    await writeFile(path, body);
    proxy.setDelay(20);
    const answer = send(host.port, 'GET', `/files/download?host=cuthost&path=${encodeURIComponent(path)}&token=${host.token}`);
    const id = await transferOf(path, 'download');
    await cutMidway(id);
    const got = await answer;
    expect(got.status).toBe(200);
    expect(got.body.length).toBe(body.length);
    expect(sha(got.body)).toBe(sha(body));
    expect(t.engine.listTransfers().find((x) => x.id === id)).toMatchObject({ state: 'done' });
  });
});

describe('web host file routes: with the engine in another process', () => {
  // The engine's API as the web host has it when it relays to `hitch daemon` or the desktop
  // app: calls and events only, no streams; files pass through this computer's disk.
  let sshd: Sshd;
  let t: TestEngine;
  let host: WebHost;
  let relayed: ReturnType<typeof relayedFileStreams>;
  let base: string;
  let remote: string;
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${host.token}` });
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

  beforeAll(async () => {
    sshd = await startSshd();
    t = await testEngine(sshd.clientConfig('filehost'));
    base = await mkdtemp(join(tmpdir(), 'hitch-static-'));
    const log = t.engine.options.log;
    const api = localApi(createRouter(t.engine, log));
    relayed = relayedFileStreams(api, log);
    host = await startWebHost({ api, staticDir: base, log, files: () => relayed });
    remote = (await t.engine.makeDirectory('filehost', `hitch-relay-${randomBytes(6).toString('hex')}`)).path;
  });
  afterAll(async () => {
    if (remote) await t?.engine.deleteFile('filehost', remote).catch(() => undefined);
    relayed?.close();
    await host?.close();
    await t?.close();
    await sshd?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('uploads and downloads the same bytes through transfer.start, and leaves no copy behind', async () => {
    const body = randomBytes(5 * 1024 * 1024 + 3);
    const path = `${remote}/relayed.bin`;
    const put = await send(host.port, 'PUT', `/files/upload?host=filehost&path=${encodeURIComponent(path)}`, { headers: { ...auth(), 'content-length': String(body.length) }, body });
    expect(put.status, put.body.toString()).toBe(200);
    expect(JSON.parse(put.body.toString())).toMatchObject({ state: 'done', done: body.length, remotePath: path, direction: 'upload' });
    expect(sha(await readFile(path))).toBe(sha(body));

    const got = await send(host.port, 'GET', `/files/download?host=filehost&path=${encodeURIComponent(path)}&token=${host.token}`);
    expect(got.status).toBe(200);
    expect(got.headers['content-length']).toBe(String(body.length));
    expect(got.headers['content-disposition']).toContain(`filename="relayed.bin"`);
    expect(sha(got.body)).toBe(sha(body));

    // The copies on this computer are gone once each transfer has ended.
    const localCopies = t.engine.listTransfers().filter((x) => x.remotePath === path).map((x) => x.localPath!);
    expect(localCopies).toHaveLength(2);
    for (const copy of localCopies) await expect.poll(() => readFile(copy).then(() => 'there', () => 'gone')).toBe('gone');
  });

  it('keeps the engine\'s refusals: an existing file is 409 until replace is asked, a missing one 404', async () => {
    const path = `${remote}/kept.txt`;
    const put = (text: string, mode = ''): Promise<Answer> =>
      send(host.port, 'PUT', `/files/upload?host=filehost&path=${encodeURIComponent(path)}${mode}`, { headers: { ...auth(), 'content-length': String(text.length) }, body: Buffer.from(text) });
    expect((await put('first\n')).status).toBe(200);
    const again = await put('second\n');
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe('exists');
    expect(await readFile(path, 'utf8')).toBe('first\n');
    expect((await put('second\n', '&ifExists=replace')).status).toBe(200);
    expect(await readFile(path, 'utf8')).toBe('second\n');
    const missing = await send(host.port, 'GET', `/files/download?host=filehost&path=${encodeURIComponent(`${remote}/nope`)}&token=${host.token}`);
    expect(missing.status).toBe(404);
    expect(errorCode(missing)).toBe('not-found');
  });
});

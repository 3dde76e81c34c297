// The web host is reachable from any page the user's browser opens, so it must refuse
// everything that is not the Hitch page it served: wrong token, foreign Origin, foreign Host.
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localApi, type Api } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import { startWebHost, type WebHost } from '../../main/web/server';
import { testEngine, type TestEngine } from '../fixtures/engine';
import type { HitchEvent } from '../../preload/api';

interface Outcome {
  status: number | null;
  ws: WebSocket | null;
}

function openApi(port: number, opts: { token?: string | null; origin?: string | null; host?: string }): Promise<Outcome> {
  const query = opts.token === null ? '' : `?token=${encodeURIComponent(opts.token ?? '')}`;
  const headers: Record<string, string> = {};
  if (opts.host) headers.host = opts.host;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api${query}`, {
    headers,
    ...(opts.origin === null ? {} : { origin: opts.origin ?? `http://127.0.0.1:${port}` }),
  });
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? null, ws: null }));
    ws.once('error', () => resolve({ status: null, ws: null }));
  });
}

function nextMessage(ws: WebSocket): Promise<Record<string, unknown>> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
}

function httpGet(port: number, path: string, host: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web host', () => {
  let t: TestEngine;
  let host: WebHost;
  let base: string;
  let staticDir: string;

  beforeAll(async () => {
    t = await testEngine('Host alpha\n  HostName 127.0.0.1\n');
    base = await mkdtemp(join(tmpdir(), 'hitch-static-'));
    staticDir = join(base, 'renderer');
    await mkdir(staticDir);
    await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hitch</title>');
    await writeFile(join(base, 'secret.txt'), 'not for the page');
    const log = t.engine.options.log;
    host = await startWebHost({ api: localApi(createRouter(t.engine, log)), staticDir, log });
  });
  afterAll(async () => {
    await host?.close();
    await t?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 only and prints a URL carrying a random token', () => {
    expect(host.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${host.port}/\\?token=[A-Za-z0-9_-]{32}$`));
  });

  it('serves the page with a strict Content-Security-Policy', async () => {
    const res = await httpGet(host.port, '/', `127.0.0.1:${host.port}`);
    expect(res.status).toBe(200);
    expect(res.body).toContain('<title>Hitch</title>');
    expect(res.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(res.headers['content-security-policy']).not.toMatch(/unsafe-eval/);
  });

  it('refuses a foreign Host header (DNS rebinding)', async () => {
    const res = await httpGet(host.port, '/', `evil.example:${host.port}`);
    expect(res.status).toBe(421);
    expect((await openApi(host.port, { token: host.token, host: `evil.example:${host.port}` })).status).toBe(421);
  });

  it('does not serve files outside the renderer directory', async () => {
    for (const path of ['/..%2fsecret.txt', '/../secret.txt', '/%2e%2e/secret.txt']) {
      const res = await httpGet(host.port, path, `127.0.0.1:${host.port}`);
      expect(res.status).toBe(404);
      expect(res.body).not.toContain('not for the page');
    }
  });

  it('refuses API connections without the token or with a wrong one', async () => {
    expect((await openApi(host.port, { token: null })).status).toBe(401);
    expect((await openApi(host.port, { token: 'x'.repeat(32) })).status).toBe(401);
    expect((await openApi(host.port, { token: host.token.slice(0, -1) })).status).toBe(401);
  });

  it('refuses API connections from a page of another origin', async () => {
    expect((await openApi(host.port, { token: host.token, origin: 'http://evil.example' })).status).toBe(403);
    expect((await openApi(host.port, { token: host.token, origin: null })).status).toBe(403);
  });

  it('answers a valid request from its own page', async () => {
    const { ws } = await openApi(host.port, { token: host.token });
    ws!.send(JSON.stringify({ id: 7, method: 'state.get', params: {} }));
    const reply = await nextMessage(ws!);
    expect(reply).toMatchObject({ id: 7, ok: true, result: { catalog: { hosts: [expect.objectContaining({ id: 'alpha' })] } } });
    ws!.close();
  });

  it('rejects malformed messages with a clear error and keeps the connection', async () => {
    const { ws } = await openApi(host.port, { token: host.token });
    const cases: [string, RegExp][] = [
      ['not json', /must be JSON/],
      [JSON.stringify({ method: 'state.get' }), /"id": number/],
      [JSON.stringify({ id: 1, method: 'nope.nothing', params: {} }), /Unknown method "nope.nothing"/],
      [JSON.stringify({ id: 2, method: 'session.open', params: { hostId: 'alpha', cols: 'wide', rows: 24 } }), /Invalid parameters for session.open at "cols"/],
      [JSON.stringify({ id: 3, method: 'session.write', params: { sessionId: '../etc', data: 'x' } }), /Invalid parameters for session.write at "sessionId"/],
      [JSON.stringify({ id: 4, method: 'master.connect', params: { hostId: 'alpha', extra: true } }), /Invalid parameters for master.connect/],
    ];
    for (const [raw, message] of cases) {
      ws!.send(raw);
      const reply = await nextMessage(ws!);
      expect(reply.ok).toBe(false);
      expect(reply.error).toMatchObject({ code: 'bad-request', message: expect.stringMatching(message) });
    }
    ws!.send(JSON.stringify({ id: 9, method: 'state.get', params: {} }));
    expect(await nextMessage(ws!)).toMatchObject({ id: 9, ok: true });
    ws!.close();
  });

  it('refuses a page a request that names files on this computer or listens beyond loopback, and keeps the connection', async () => {
    const { ws } = await openApi(host.port, { token: host.token });
    ws!.send(JSON.stringify({ id: 5, method: 'transfer.start', params: { hostId: 'alpha', direction: 'upload', localPath: '/etc/passwd', remotePath: 'x' } }));
    expect(await nextMessage(ws!)).toMatchObject({ id: 5, ok: false, error: { code: 'forbidden', message: expect.stringContaining('names files on this computer') } });
    // Nor a forward listening beyond this computer's loopback.
    ws!.send(JSON.stringify({ id: 8, method: 'forwards.open', params: { hostId: 'alpha', kind: 'dynamic', bindAddress: '*', listenPort: 0 } }));
    expect(await nextMessage(ws!)).toMatchObject({ id: 8, ok: false, error: { code: 'forbidden', message: expect.stringContaining('loopback') } });
    ws!.send(JSON.stringify({ id: 6, method: 'transfers.list', params: {} }));
    expect(await nextMessage(ws!)).toMatchObject({ id: 6, ok: true, result: { transfers: [] } });
    ws!.close();
  });

  it('closes a connection that sends an oversized message', async () => {
    const { ws } = await openApi(host.port, { token: host.token });
    const closed = new Promise<number>((resolve) => ws!.once('close', (code) => resolve(code)));
    ws!.send(JSON.stringify({ id: 1, method: 'session.write', params: { sessionId: 's1', data: 'x'.repeat(2 << 20) } }));
    expect(await closed).toBe(1009); // "message too big"
  });

  it('answers a malformed upgrade URL with 400 and closes the socket (no handler throws, no descriptor kept)', async () => {
    const answer = await new Promise<{ text: string; closed: boolean }>((resolve) => {
      const sock = connect(host.port, '127.0.0.1');
      let text = '';
      sock.setEncoding('utf8').on('data', (d: string) => (text += d));
      sock.on('close', () => resolve({ text, closed: true }));
      sock.on('error', () => undefined);
      sock.write(`GET //[ HTTP/1.1\r\nHost: 127.0.0.1:${host.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    expect(answer.text).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect(answer.closed).toBe(true);
    expect((await openApi(host.port, { token: host.token })).status).toBe(101);
  });

  it('refuses a chosen token weaker than 128 bits, saying how to make one', async () => {
    const log = t.engine.options.log;
    const start = (token: string) => startWebHost({ api: localApi(createRouter(t.engine, log)), staticDir, log, token });
    await expect(start('secret')).rejects.toThrow(/at least 128 bits.*openssl rand/);
    await expect(start('a'.repeat(21))).rejects.toThrow(/HITCH_WEB_TOKEN must be/);
    const strong = await start('abcdefghijklmnopqrstuv');
    await strong.close();
  });

  it('disconnects a page that stops reading instead of queueing events for it without bound', async () => {
    const log = t.engine.options.log;
    // An engine with a flood of output for the page: the page's connection is the sink.
    const sink: { emit: ((e: HitchEvent) => void) | null } = { emit: null };
    const flooding: Api = {
      openConnection(send) {
        sink.emit = send;
        return { request: () => undefined, close: () => (sink.emit = null) };
      },
    };
    const slow = await startWebHost({ api: flooding, staticDir, log });
    try {
      const { ws } = await openApi(slow.port, { token: slow.token });
      const closed = new Promise<void>((resolve) => ws!.once('close', () => resolve()));
      // The page stops reading; the engine has 64 MiB of output for it.
      (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
      const data = 'y'.repeat(1 << 20);
      for (let i = 0; i < 64 && sink.emit; i++) {
        sink.emit({ event: 'session.data', payload: { sessionId: 's1', data, offset: i * data.length } } as HitchEvent);
        await new Promise((r) => setImmediate(r));
      }
      expect(sink.emit).toBeNull(); // closed: the page was dropped
      (ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await closed;
    } finally {
      await slow.close();
    }
  });
});

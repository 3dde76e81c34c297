// The engine socket's binary frames: a raw session's output crosses it as bytes, not base64 in
// JSON, for a client that asks for them (the `hitch` command); a client that does not ask gets
// the JSON it always got. Frames and lines are read back whatever pieces the stream arrives in.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Api, Outgoing } from '../../main/api/connection';
import { createLogger } from '../../main/engine/log';
import { connectEngineSocket, engineSocketPath, privateRuntimeDir, serveEngineSocket, type EngineSocketServer } from '../../main/transport/engine-socket';
import type { HitchEvent } from '../../preload/api';

/** What the fake engine sends each client that calls `emit`: text, raw bytes of several sizes, a reply. */
const CHUNKS = [Buffer.from([0, 10, 255, 13, 10, 0]), randomBytes(70_000), Buffer.alloc(0), randomBytes(3 << 20), Buffer.from('{"not":"json"}\n')];

let dir: string;
let server: EngineSocketServer;
/** What each connection was opened with: whether its transport said it carries bytes. */
const transports: (boolean | undefined)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hitch-frames-'));
  const api: Api = {
    openConnection(send: (message: Outgoing) => void, transport) {
      transports.push(transport?.bytes);
      return {
        request(message) {
          const { id } = message as { id: number };
          send({ event: 'session.data', payload: { sessionId: 's1', offset: 0, data: 'text ✓\n', stream: 'stdout' } });
          let offset = 0;
          for (const [i, chunk] of CHUNKS.entries()) {
            send({ event: 'session.data', payload: { sessionId: 's1', offset, data: chunk, stream: i % 2 ? 'stderr' : 'stdout', encoding: 'bytes' } });
            offset += chunk.length;
          }
          send({ id, ok: true, result: 'done' });
        },
        close: () => undefined,
      };
    },
  };
  server = await serveEngineSocket({ api, runtimeDir: join(dir, 'run'), log: createLogger(() => undefined, 'error') });
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every session.data event a client gets until the reply to its `emit` call. */
async function collect(socketPath: string): Promise<Extract<HitchEvent, { event: 'session.data' }>['payload'][]> {
  const conn = await connectEngineSocket(socketPath);
  const got: Extract<HitchEvent, { event: 'session.data' }>['payload'][] = [];
  conn.onEvent((e) => {
    if (e.event === 'session.data') got.push(e.payload);
  });
  const reply = await conn.call('emit', {});
  conn.close();
  expect(reply).toEqual({ ok: true, result: 'done' });
  return got;
}

function expectAllBytes(got: Awaited<ReturnType<typeof collect>>): void {
  expect(got[0]).toMatchObject({ data: 'text ✓\n', stream: 'stdout' });
  expect(got).toHaveLength(CHUNKS.length + 1);
  for (const [i, chunk] of CHUNKS.entries()) {
    const p = got[i + 1]!;
    expect(p.encoding).toBe('bytes');
    expect(p.stream).toBe(i % 2 ? 'stderr' : 'stdout');
    expect(Buffer.compare(Buffer.from(p.data as Uint8Array), chunk)).toBe(0);
  }
}

describe('binary frames on the engine socket', () => {
  it("carries a raw session's output as bytes to a client that asks for frames", async () => {
    expectAllBytes(await collect(server.path));
    expect(transports.at(-1)).toBe(true);
  });

  it('reads frames and lines back from a stream cut into arbitrary pieces', async () => {
    // A relay that passes the engine's bytes on in pieces of 1 to 600 bytes, each on its own turn.
    const relayDir = join(dir, 'relay');
    await privateRuntimeDir(relayDir);
    const relay: Server = createServer((client: Socket) => {
      const upstream = connect(server.path);
      client.pipe(upstream);
      let queue = Promise.resolve();
      let seed = 7;
      upstream.on('data', (chunk: Buffer) => {
        queue = queue.then(async () => {
          for (let i = 0; i < chunk.length; ) {
            seed = (seed * 1103515245 + 12345) % 2 ** 31;
            const n = 1 + (seed % 600);
            client.write(chunk.subarray(i, i + n));
            i += n;
            if (seed % 5 === 0) await new Promise((r) => setImmediate(r));
          }
        });
      });
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(engineSocketPath(relayDir), resolve));
    try {
      expectAllBytes(await collect(engineSocketPath(relayDir)));
    } finally {
      await new Promise((r) => relay.close(r));
    }
  });

  it('sends base64 in JSON lines to a client that does not ask for frames', async () => {
    const sock = connect(server.path);
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (text += d));
    sock.write(JSON.stringify({ id: 5, method: 'emit', params: {} }) + '\n');
    await new Promise<void>((resolve) => {
      const check = (): void => (text.includes('"id":5') ? resolve() : void setTimeout(check, 10));
      check();
    });
    sock.destroy();
    expect(text.includes('\0')).toBe(false);
    const events = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event?: string; payload?: { data: string; encoding?: string } })
      .filter((m) => m.event === 'session.data');
    expect(events).toHaveLength(CHUNKS.length + 1);
    for (const [i, chunk] of CHUNKS.entries()) {
      expect(events[i + 1]!.payload!.encoding).toBe('base64');
      expect(Buffer.from(events[i + 1]!.payload!.data, 'base64').equals(chunk)).toBe(true);
    }
  });

  it('takes what a client sends as JSON lines only: a line starting like a frame is malformed JSON, and the connection stays', async () => {
    const sock = connect(server.path);
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.write(Buffer.concat([Buffer.from([0, 0, 0, 0, 2, 0, 0, 0, 0, 123, 125, 10]), Buffer.from(JSON.stringify({ id: 9, method: 'emit', params: {} }) + '\n')]));
    await new Promise<void>((resolve) => {
      const check = (): void => (text.includes('"id":9') ? resolve() : void setTimeout(check, 10));
      check();
    });
    sock.destroy();
    expect(text.split('\n')[0]).toMatch(/"id":null,"ok":false,"error":\{"code":"bad-request","message":"Malformed JSON/);
  });
});

// The descriptor-passing Unix sockets the control socket stands on (native/unix_socket.c and
// unix-socket.ts), against Node's own sockets and each other: bytes both ways, half-close,
// descriptors that arrive open and usable, a full socket that drains, and close from inside
// an event handler.
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadUnix, type Unix } from '../../main/native/unix';
import { UnixConnection, UnixListener } from '../../main/native/unix-socket';

let unix: Unix;
let dir: string;
let n = 0;

beforeAll(async () => {
  unix = await loadUnix();
  dir = await mkdtemp(join(tmpdir(), 'hitch-unix-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A listener whose connections are handed to `serve`. */
function server(serve: (c: UnixConnection) => void): { path: string; close(): void } {
  const path = join(dir, `s${++n}`);
  const listener = UnixListener.listen(unix, path, 16);
  listener.on('connection', (fd) => serve(new UnixConnection(unix, fd)));
  return { path, close: () => listener.close() };
}

function collect(sock: Socket): Promise<{ data: Buffer; ended: boolean }> {
  const parts: Buffer[] = [];
  let ended = false;
  sock.on('data', (d: Buffer) => parts.push(d));
  sock.on('end', () => (ended = true));
  return new Promise((resolve) => sock.on('close', () => resolve({ data: Buffer.concat(parts), ended })));
}

describe('Unix sockets with descriptors', () => {
  it('talks with a Node socket both ways and closes when both sides have ended', async () => {
    const closed: string[] = [];
    const got: Buffer[] = [];
    const s = server((c) => {
      c.write(Buffer.from('hello from the server'));
      c.on('data', (chunk) => got.push(chunk));
      c.on('end', () => c.end());
      c.on('close', () => closed.push('server'));
    });
    const client = connect(s.path);
    const result = collect(client);
    client.end('hello from the client');
    const { data, ended } = await result;
    expect(data.toString()).toBe('hello from the server');
    expect(ended).toBe(true);
    expect(Buffer.concat(got).toString()).toBe('hello from the client');
    await expect.poll(() => closed).toEqual(['server']);
    s.close();
  });

  it('passes descriptors that arrive open, close-on-exec, beside their byte', async () => {
    const file = join(dir, 'passed.txt');
    writeFileSync(file, 'contents of the passed file');
    const received = new Promise<{ bytes: string; fds: number[] }>((resolve) => {
      const s = server((c) => {
        let bytes = '';
        const fds: number[] = [];
        c.on('data', (chunk, more) => {
          bytes += chunk.toString();
          fds.push(...more);
          if (bytes.length >= 3) {
            c.destroy();
            s.close();
            resolve({ bytes, fds });
          }
        });
      });
      const fd = openSync(file, 'r');
      const client = UnixConnection.connect(unix, s.path);
      client.write(Buffer.from('ab'));
      client.write(Buffer.from('c'), [fd]);
      client.end();
      client.on('close', () => closeSync(fd));
    });
    const { bytes, fds } = await received;
    expect(bytes).toBe('abc');
    expect(fds).toHaveLength(1);
    const buf = Buffer.alloc(64);
    const len = readSync(fds[0]!, buf, 0, 64, 0);
    expect(buf.subarray(0, len).toString()).toBe('contents of the passed file');
    expect(fstatSync(fds[0]!).isFile()).toBe(true);
    closeSync(fds[0]!);
  });

  it('queues what a slow reader cannot take yet, says when it drained, and delivers every byte', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    let firstWrite: boolean | null = null;
    let drained = false;
    const s = server((c) => {
      firstWrite = c.write(big);
      c.once('drain', () => {
        drained = true;
        c.end();
      });
      c.on('end', () => c.destroy());
    });
    const client = connect(s.path);
    client.pause();
    const result = collect(client);
    await new Promise((r) => setTimeout(r, 100));
    client.resume();
    client.on('end', () => client.end());
    const { data } = await result;
    expect(firstWrite).toBe(false);
    expect(drained).toBe(true);
    expect(data.length).toBe(big.length);
    expect(data.every((b) => b === 7)).toBe(true);
    s.close();
  });

  it('can be destroyed from inside its own data handler, with no event after', async () => {
    const events: string[] = [];
    const s = server((c) => {
      c.on('data', () => {
        events.push('data');
        c.destroy();
        c.destroy();
      });
      c.on('end', () => events.push('end'));
      c.on('close', () => events.push('close'));
    });
    const client = connect(s.path);
    const result = collect(client);
    client.write('x'.repeat(100_000));
    await result;
    await expect.poll(() => events).toEqual(['data', 'close']);
    s.close();
  });

  it('says clearly when nobody listens, and when the path is too long', () => {
    expect(() => UnixConnection.connect(unix, join(dir, 'nobody'))).toThrow(/ENOENT|No such file/);
    expect(() => UnixListener.listen(unix, join(dir, 'x'.repeat(200)), 1)).toThrow(/longer than the system allows/);
  });
});

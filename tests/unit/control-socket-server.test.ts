// The control-socket server against a master that never answers, so that a request stays at
// work: what a client sends meanwhile must wait in the kernel, not in the engine's memory.
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ControlSocketForwards } from '../../main/engine/control-socket/forwards';
import { MSG, MessageWriter } from '../../main/engine/control-socket/frames';
import type { MasterPort } from '../../main/engine/control-socket/master-port';
import { ControlSocketServer } from '../../main/engine/control-socket/server';
import { loadUnix, type Unix } from '../../main/native/unix';
import { UnixConnection } from '../../main/native/unix-socket';
import { createLogger } from '../../main/engine/log';

let dir: string;
let unix: Unix;
let server: ControlSocketServer;
const log = createLogger(() => undefined, 'error');

/** A master whose sessions never open: the request that asks for one stays at work. */
const stalledMaster: MasterPort = {
  id: 'stalled',
  log,
  openSession: () => new Promise(() => undefined),
  forwardOut: () => new Promise(() => undefined),
  primary: () => null,
  terminate: () => undefined,
  retain: () => undefined,
  release: () => undefined,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hitch-cs-'));
  unix = await loadUnix();
  server = await ControlSocketServer.listen({ path: join(dir, 'sock'), master: stalledMaster, forwards: {} as ControlSocketForwards, unix, log, onStopListening: () => undefined });
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

it('stops reading a client that floods frames while its request is at work, instead of buffering them', async () => {
  const c = UnixConnection.connect(unix, server.path);
  c.on('error', () => undefined);
  const hello = new MessageWriter(MSG.HELLO).u32(4).frame();
  const newSession = new MessageWriter(MSG.C_NEW_SESSION).u32(2).string('').u32(0).u32(0).u32(0).u32(0).u32(0xffffffff).string('').string('true').frame();
  const fds = [openSync('/dev/null', 'r'), openSync('/dev/null', 'w'), openSync('/dev/null', 'w')];
  c.write(Buffer.concat([hello, newSession]));
  for (const fd of fds) c.write(Buffer.from([0]), [fd]);
  fds.forEach((fd) => closeSync(fd));
  // The session never opens; meanwhile 32 MiB of ALIVE_CHECK frames.
  const flood = Buffer.concat(Array.from({ length: 4096 }, () => new MessageWriter(MSG.C_ALIVE_CHECK).u32(9).frame()));
  for (let i = 0; i < (32 * 1024 * 1024) / flood.length; i++) c.write(flood);
  await new Promise((r) => setTimeout(r, 3000));
  // The master took about one frame's worth (256 KiB) beyond what the kernel buffers.
  expect(c.writableLength).toBeGreaterThan(24 * 1024 * 1024);
  c.destroy();
});

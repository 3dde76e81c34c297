// The `hitch` command and a second app find a running engine by its socket, then send it
// requests, including answers to password prompts. Before anything is sent, the client checks
// that the socket's directory is private to this user, that the socket is its own, and that
// the process serving it runs as this user: a fake engine gets nothing.
import { execFile, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEngineSocket, SOCKET_NAME, UntrustedEngineError } from '../../main/transport/engine-socket';
import { startSshd, TEST_USER, type Sshd } from '../fixtures/sshd';

const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'hitch-trust-'));
  await chmod(base, 0o755);
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A fake engine in `dir` that records every byte a client sends it. */
async function fakeEngine(dir: string): Promise<{ server: Server; received: () => number; connections: () => number }> {
  let bytes = 0;
  let connections = 0;
  const server = createServer((sock) => {
    connections++;
    sock.on('data', (d) => (bytes += d.length));
  });
  await new Promise<void>((resolve) => server.listen(join(dir, SOCKET_NAME), resolve));
  return { server, received: () => bytes, connections: () => connections };
}

async function privateDir(name: string, mode = 0o700): Promise<string> {
  const dir = join(base, name);
  await run('mkdir', ['-m', mode.toString(8), dir]);
  return dir;
}

describe('an engine socket client', () => {
  it('refuses a socket in a directory other users can write to, sending nothing', async () => {
    const dir = await privateDir('open', 0o777);
    const fake = await fakeEngine(dir);
    try {
      const attempt = connectEngineSocket(join(dir, SOCKET_NAME));
      await expect(attempt).rejects.toThrow(UntrustedEngineError);
      await expect(attempt).rejects.toThrow(/is open to other users \(mode 777; it must be 700\)/);
      expect(fake.connections()).toBe(0);
    } finally {
      fake.server.close();
    }
  });

  it('refuses a directory that is a symbolic link', async () => {
    const real = await privateDir('real');
    const fake = await fakeEngine(real);
    const linked = join(base, 'linked');
    await run('ln', ['-s', real, linked]);
    try {
      await expect(connectEngineSocket(join(linked, SOCKET_NAME))).rejects.toThrow(/is a symbolic link/);
      expect(fake.connections()).toBe(0);
    } finally {
      fake.server.close();
    }
  });

  describe.skipIf(!asRoot)('with another user on the machine (needs root to create one and change owners)', () => {
    let sshd: Sshd;
    let otherUid: number;
    beforeAll(async () => {
      sshd = await startSshd(); // creates the unprivileged test user
      otherUid = Number((await run('id', ['-u', TEST_USER])).stdout.trim());
    });
    afterAll(async () => {
      await sshd?.stop();
    });

    it('refuses a directory or socket that belongs to another user', async () => {
      const dir = await privateDir('theirs');
      const fake = await fakeEngine(dir);
      try {
        await chown(join(dir, SOCKET_NAME), otherUid, otherUid);
        await expect(connectEngineSocket(join(dir, SOCKET_NAME))).rejects.toThrow(new RegExp(`it belongs to uid ${otherUid}, not to this user`));
        await chown(dir, otherUid, otherUid);
        await expect(connectEngineSocket(join(dir, SOCKET_NAME))).rejects.toThrow(new RegExp(`directory .* belongs to uid ${otherUid}`));
        expect(fake.connections()).toBe(0);
      } finally {
        fake.server.close();
      }
    });

    it('refuses an engine served by another user’s process (SO_PEERCRED), even in a private directory, sending nothing', async () => {
      // The other user binds the socket while the directory is open, then it is made private
      // and the socket handed to this user: only the peer check can tell.
      const dir = await privateDir('impostor', 0o777);
      const log = join(dir, 'received');
      const script = join(base, 'impostor.cjs');
      await writeFile(
        script,
        `const fs = require('fs'); require('net').createServer((s) => s.on('data', (d) => fs.appendFileSync(${JSON.stringify(log)}, d))).listen(${JSON.stringify(join(dir, SOCKET_NAME))}, () => console.log('ready'));`,
      );
      await chmod(script, 0o644);
      const impostor = spawn(process.execPath, [script], { uid: otherUid, gid: otherUid, stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise<void>((resolve, reject) => {
          impostor.stdout!.once('data', () => resolve());
          impostor.once('exit', (code) => reject(new Error(`the impostor exited (${code})`)));
        });
        await chown(join(dir, SOCKET_NAME), 0, 0);
        await chmod(join(dir, SOCKET_NAME), 0o600);
        await chmod(dir, 0o700);
        await expect(connectEngineSocket(join(dir, SOCKET_NAME))).rejects.toThrow(new RegExp(`served by a process of uid ${otherUid}, not of this user`));
        await new Promise((r) => setTimeout(r, 200));
        expect(await readFile(log, 'utf8').catch(() => '')).toBe('');
      } finally {
        impostor.kill();
      }
    });
  });
});

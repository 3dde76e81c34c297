// `hitch cp` run as a real process against a headless engine and a real sshd, as a script
// would: 100 MB up and back with equal checksums, an existing destination refused unless
// --force, several files into a directory, usage errors (one authentication in sshd's log for
// all of it), and a copy that rides out a network cut (resumes ≥ 1, same checksum).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpOutputSchema } from '../../main/cli/schemas';
import { CLI, ensureBuilt, hitchEnv } from '../fixtures/built';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { behindProxy, startProxy, type TcpProxy } from '../fixtures/tcp-proxy';
import { randomFile, sha256File } from '../fixtures/local-files';

interface Ran {
  status: number | null;
  out: string;
  stderr: string;
}

function started(child: ChildProcess): Promise<Ran> {
  let out = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, out, stderr })));
}

describe('hitch cp', () => {
  let sshd: Sshd;
  let proxy: TcpProxy;
  let dir: string;
  let env: Record<string, string>;
  let daemon: ChildProcess;
  /** This run's directory on the host, relative to the login directory. */
  const remoteDir = `hitch-cp-${randomBytes(6).toString('hex')}`;

  const hitch = (args: string[]): Promise<Ran> => started(spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const cpJson = async (args: string[]) => {
    const r = await hitch(['cp', '--json', ...args]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return cpOutputSchema.parse(JSON.parse(r.out));
  };

  /** As cpJson, where stderr may carry notes (skipped files). */
  const cpJsonLoose = async (args: string[]) => {
    const r = await hitch(['cp', '--json', ...args]);
    expect(r.status, r.stderr).toBe(0);
    return cpOutputSchema.parse(JSON.parse(r.out));
  };

  beforeAll(async () => {
    await ensureBuilt();
    sshd = await startSshd();
    proxy = await startProxy({ targetPort: sshd.port });
    dir = await mkdtemp(join(tmpdir(), 'hitch-cp-'));
    await writeFile(join(dir, 'ssh_config'), await behindProxy(sshd, proxy, 'box'));
    env = hitchEnv(dir);
    daemon = spawn(process.execPath, [CLI, 'daemon'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    for (let i = 0; i < 200 && (await hitch(['ls'])).status !== 0; i++) await new Promise((r) => setTimeout(r, 50));
    const made = await hitch(['exec', 'box', '--', 'mkdir', remoteDir]);
    expect(made.status).toBe(0);
  }, 120_000);

  afterAll(async () => {
    proxy?.setDelay(0);
    await hitch(['exec', 'box', '--', 'rm', '-rf', remoteDir]).catch(() => undefined);
    if (daemon && daemon.exitCode === null) daemon.kill('SIGTERM');
    await proxy?.close();
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads and downloads 100 MB over the master with equal checksums, --json saying what it did', async () => {
    const size = 100 * 1024 * 1024;
    const source = join(dir, 'hundred.bin');
    await randomFile(source, size);
    const up = await cpJson([source, `box:${remoteDir}/`]);
    expect(up.transfers).toEqual([
      { id: expect.stringMatching(/^t\d+$/), direction: 'upload', host: 'box', source, destination: `box:/home/${sshd.user}/${remoteDir}/hundred.bin`, bytes: size, ms: expect.any(Number), resumes: 0 },
    ]);
    const back = join(dir, 'back');
    await mkdir(back);
    const down = await cpJson([`box:${remoteDir}/hundred.bin`, back]);
    expect(down.transfers).toEqual([expect.objectContaining({ direction: 'download', source: `box:/home/${sshd.user}/${remoteDir}/hundred.bin`, destination: join(back, 'hundred.bin'), bytes: size })]);
    expect(await sha256File(join(back, 'hundred.bin'))).toBe(await sha256File(source));
  }, 180_000);

  it('refuses an existing destination without --force, replaces it with --force', async () => {
    const a = join(dir, 'a.txt');
    await writeFile(a, 'first\n');
    await cpJson([a, `box:${remoteDir}/a.txt`]);
    await writeFile(a, 'second\n');
    const refused = await hitch(['cp', a, `box:${remoteDir}/a.txt`]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^hitch: .*a\.txt already exists on box.*--force.*--resume.*\n$/);
    expect(refused.stderr.split('\n')).toHaveLength(2);
    const local = join(dir, 'a-back.txt');
    await cpJson([`box:${remoteDir}/a.txt`, local]);
    expect(await readFile(local, 'utf8')).toBe('first\n');
    const downRefused = await hitch(['cp', `box:${remoteDir}/a.txt`, local]);
    expect(downRefused.status).toBe(1);
    expect(downRefused.stderr).toMatch(/^hitch: .*a-back\.txt already exists on this computer.*--force/);

    await cpJson(['--force', a, `box:${remoteDir}/a.txt`]);
    await cpJson(['--force', `box:${remoteDir}/a.txt`, local]);
    expect(await readFile(local, 'utf8')).toBe('second\n');
  });

  it('copies several files into a directory, and says what is wrong with a bad command', async () => {
    await writeFile(join(dir, 'one.txt'), '1');
    await writeFile(join(dir, 'two.txt'), '22');
    const several = await cpJson([join(dir, 'one.txt'), join(dir, 'two.txt'), `box:${remoteDir}`]);
    expect(several.transfers.map((t) => [t.destination, t.bytes])).toEqual([
      [`box:/home/${sshd.user}/${remoteDir}/one.txt`, 1],
      [`box:/home/${sshd.user}/${remoteDir}/two.txt`, 2],
    ]);
    const notDir = await hitch(['cp', join(dir, 'one.txt'), join(dir, 'two.txt'), `box:${remoteDir}/one.txt`]);
    expect(notDir.status).toBe(1);
    expect(notDir.stderr).toMatch(/^hitch: .*is not a directory/);

    for (const args of [['cp', join(dir, 'one.txt')], ['cp', join(dir, 'one.txt'), join(dir, 'x')], ['cp', 'box:a', 'box:b'], ['cp', '--force', '--resume', 'a', 'box:']]) {
      const r = await hitch(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^hitch: .*\n$/);
    }
    const missing = await hitch(['cp', `box:${remoteDir}/nothing-here`, dir]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^hitch: .*nothing-here: no such file or directory/);
    // Everything so far rode the one master: sshd saw a single login.
    expect(await sshd.acceptedLogins()).toBe(1);
  });

  it('copies a directory with everything in it with -r, both ways, as scp -r does', async () => {
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'sub', 'deeper'), { recursive: true });
    await mkdir(join(tree, 'empty'));
    await writeFile(join(tree, 'a.txt'), 'a');
    await writeFile(join(tree, 'sub', 'b.bin'), randomBytes(70_000));
    await writeFile(join(tree, 'sub', 'deeper', 'c.txt'), 'ccc');
    await symlink('/etc', join(tree, 'link')); // never followed
    const files = ['a.txt', 'sub/b.bin', 'sub/deeper/c.txt'];
    const home = `/home/${sshd.user}/${remoteDir}`;

    const plain = await hitch(['cp', tree, `box:${remoteDir}`]);
    expect(plain.status).toBe(1);
    expect(plain.stderr).toMatch(/^hitch: .*tree is a directory: use -r/);
    // Down too, before anything is copied.
    await writeFile(join(home, 'loose.txt'), 'loose');
    const plainDown = await hitch(['cp', `box:${remoteDir}/loose.txt`, `box:${remoteDir}`, join(dir, 'nothing-yet')]);
    expect(plainDown.status).toBe(1);
    expect(plainDown.stderr).toMatch(/nothing-yet is not a directory: copying several files needs one/);
    await mkdir(join(dir, 'nothing-yet'));
    const plainDown2 = await hitch(['cp', `box:${remoteDir}/loose.txt`, `box:${remoteDir}`, join(dir, 'nothing-yet')]);
    expect(plainDown2.status).toBe(1);
    expect(plainDown2.stderr).toMatch(/is a directory: use -r/);
    expect(await readdir(join(dir, 'nothing-yet'))).toEqual([]);

    // Into a directory that is there: under its own name.
    const up = await hitch(['cp', '--json', '-r', tree, `box:${remoteDir}`]);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stderr).toBe(`hitch: skipped ${join(tree, 'link')}: not a regular file or directory (symlinks are not followed)\n`);
    expect(cpOutputSchema.parse(JSON.parse(up.out)).transfers.map((t) => t.destination)).toEqual(files.map((f) => `box:${home}/tree/${f}`));
    for (const f of files) expect((await readFile(join(home, 'tree', f))).equals(await readFile(join(tree, f))), f).toBe(true);
    expect((await stat(join(home, 'tree', 'empty'))).isDirectory()).toBe(true);
    // Again: its directories are there already (fine), its files too (replaced only with --force).
    const refused = await hitch(['cp', '-r', tree, `box:${remoteDir}`]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/a\.txt.*exists.*--force/);
    expect((await cpJsonLoose(['-r', '--force', tree, `box:${remoteDir}`])).transfers).toHaveLength(3);

    // Down to a name that is not there: the copy is made under that name.
    await symlink('/etc', join(home, 'tree', 'remote-link'));
    const back = join(dir, 'tree-back');
    const down = await hitch(['cp', '--json', '-r', `box:${remoteDir}/tree`, back]);
    expect(down.status, down.stderr).toBe(0);
    expect(down.stderr).toMatch(/skipped .*remote-link/);
    expect(cpOutputSchema.parse(JSON.parse(down.out)).transfers.map((t) => t.destination)).toEqual(files.map((f) => join(back, f)));
    for (const f of files) expect((await readFile(join(back, f))).equals(await readFile(join(tree, f))), f).toBe(true);
    expect((await stat(join(back, 'empty'))).isDirectory()).toBe(true);
    await expect(lstat(join(back, 'remote-link'))).rejects.toThrow();

    // A tree's file goes to its own path: a directory or a symlink found there is refused, never
    // gone into. (`into` is there already: the copy goes inside it, as tree/.)
    const into = join(dir, 'tree-into');
    await mkdir(join(into, 'tree', 'a.txt'), { recursive: true });
    const intoDir = await hitch(['cp', '-r', `box:${remoteDir}/tree`, into]);
    expect(intoDir.status, intoDir.stderr).toBe(1);
    expect(intoDir.stderr).toMatch(/a\.txt is a directory on this computer: not replaced by a file\.\n$/); // no --force would help
    expect(await readdir(join(into, 'tree', 'a.txt'))).toEqual([]);
    await rm(join(into, 'tree', 'a.txt'), { recursive: true });
    await mkdir(join(into, 'tree', 'sub'), { recursive: true }); // made by the copy above
    await symlink(join(dir, 'elsewhere.bin'), join(into, 'tree', 'sub', 'b.bin'));
    const viaLink = await hitch(['cp', '-r', '--force', `box:${remoteDir}/tree`, into]);
    expect(viaLink.status).toBe(1);
    expect(viaLink.stderr).toMatch(/b\.bin is a symlink on this computer: not followed/);
    await expect(lstat(join(dir, 'elsewhere.bin'))).rejects.toThrow();

    // Named as asked: a link to a directory gives its own name, as with scp.
    await symlink('tree', join(home, 'tree-link'));
    const named = join(dir, 'named');
    await mkdir(named);
    expect((await cpJsonLoose(['-r', `box:${remoteDir}/tree-link`, named])).transfers).toHaveLength(3);
    expect((await readdir(named))).toEqual(['tree-link']);
  });

  it('uploads a file into a folder it may write to but not list (a drop folder)', async () => {
    expect((await hitch(['exec', 'box', '--', 'mkdir', '-m', '733', `${remoteDir}/drop`])).status).toBe(0);
    await writeFile(join(dir, 'dropped.txt'), 'into the drop folder\n');
    const r = await hitch(['cp', join(dir, 'dropped.txt'), `box:${remoteDir}/drop/`]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(await readFile(`/home/${sshd.user}/${remoteDir}/drop/dropped.txt`, 'utf8')).toBe('into the drop folder\n');
  });

  it('cancels the copy in the engine on Ctrl-C', async () => {
    const source = join(dir, 'interrupted.bin');
    await randomFile(source, 16 * 1024 * 1024);
    await cpJson([source, `box:${remoteDir}/interrupted.bin`]);
    const dest = join(dir, 'interrupted-back.bin');
    proxy.setDelay(20);
    try {
      const child = spawn(process.execPath, [CLI, 'cp', `box:${remoteDir}/interrupted.bin`, dest], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const done = started(child);
      await expect.poll(async () => (await stat(dest + '.hitch-part').catch(() => null))?.size ?? 0, { timeout: 60_000, interval: 20 }).toBeGreaterThan(1024 * 1024);
      child.kill('SIGINT');
      const r = await done;
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^hitch: .*cancelled\.\n$/);
      // The engine stopped it and removed its part file.
      await expect.poll(async () => (await stat(dest + '.hitch-part').catch(() => null)) === null, { timeout: 10_000 }).toBe(true);
      await expect(stat(dest)).rejects.toThrow();
    } finally {
      proxy.setDelay(0);
    }
  }, 90_000);

  it('rides out a network cut in the middle of a copy and ends with the same checksum', async () => {
    const size = 32 * 1024 * 1024;
    const source = join(dir, 'cut.bin');
    await randomFile(source, size);
    await cpJson([source, `box:${remoteDir}/cut.bin`]);
    const dest = join(dir, 'cut-back.bin');
    proxy.setDelay(20); // slow enough for the cut to land mid-way
    const copy = hitch(['cp', '--json', `box:${remoteDir}/cut.bin`, dest]);
    await expect.poll(async () => (await stat(dest + '.hitch-part').catch(() => null))?.size ?? 0, { timeout: 60_000, interval: 20 }).toBeGreaterThan(2 * 1024 * 1024);
    proxy.resetAll();
    proxy.setDelay(0);
    const r = await copy;
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [t] = cpOutputSchema.parse(JSON.parse(r.out)).transfers;
    expect(t).toMatchObject({ bytes: size, destination: dest });
    expect(t!.resumes).toBeGreaterThanOrEqual(1);
    expect(await sha256File(dest)).toBe(await sha256File(source));
    // One more login: the master's reconnect after the cut, and nothing else.
    expect(await sshd.acceptedLogins()).toBe(2);
  }, 120_000);
});

// A user reaches hosts that are only reachable through a bastion (ProxyJump), and through a
// bastion behind a bastion (`ProxyJump a,b`). Each hop is a master of its own: every host
// behind a jump rides the jump's one authenticated connection, and the jump stays up exactly
// as long as something behind it is in use.
//
// The network is real: network namespaces made by the test. From the test process (the root
// namespace) only the jump is reachable; the targets listen on the loopback of the namespace
// behind it, and the deepest target on the loopback of a namespace that only the second jump
// can reach.
//
//   test process ──veth── [outer: jump on its veth address; target, target2 on its 127.0.0.1]
//                                 └──veth── [inner: jump2 on its veth address; deep on its 127.0.0.1]
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MasterView } from '../../preload/api';
import { createNetns, netnsUnavailable, type Netns } from '../fixtures/netns';
import { keygen, startSshd, TEST_PASSWORD, type Sshd } from '../fixtures/sshd';
import { type TestEngine, testEngine } from '../fixtures/engine';
import { failure } from '../fixtures/failure';

// Skipped only where it cannot run at all: not root, or no `ip`. The reason is in the suite's name.
const noNetns = await netnsUnavailable();
const withReason = (name: string, reason: string | null): string => (reason ? `${name} (skipped: ${reason})` : name);

/** Whether a TCP connection from the test process itself reaches host:port. */
function reachableFromHere(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: 1000 });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}


describe.skipIf(noNetns !== null)(withReason('hosts behind jump hosts (ProxyJump)', noNetns), () => {
  let outer: Netns | undefined;
  let inner: Netns | undefined;
  const servers: Sshd[] = [];
  let jump: Sshd;
  let jump2: Sshd;
  let target: Sshd;
  let target2: Sshd;
  let deep: Sshd;
  /** Takes only passwords, on the outer namespace's veth address: a jump or a target. */
  let passwordOnly: Sshd;
  let config: string;
  const engines: TestEngine[] = [];
  let t: TestEngine;

  const engine = async (sshConfig: string, opts: Parameters<typeof testEngine>[1] = {}): Promise<TestEngine> => {
    const e = await testEngine(sshConfig, opts);
    engines.push(e);
    return e;
  };
  const server = async (opts: Parameters<typeof startSshd>[0]): Promise<Sshd> => {
    const s = await startSshd(opts);
    servers.push(s);
    return s;
  };
  const jumpId = (): string => `${jump.user}@${jump.address}:${jump.port}`;
  const masters = async (e: TestEngine): Promise<MasterView[]> => (await e.engine.snapshot()).masters;

  beforeAll(async () => {
    // Root with `ip` installed: namespaces that cannot be made fail this suite, never skip it.
    try {
      outer = await createNetns();
      inner = await createNetns({ peer: outer });
    } catch (err) {
      throw new Error(`network namespaces could not be set up, though this runs as root with \`ip\` installed: ${(err as Error).message.trim()}`, {
        cause: err,
      });
    }
    [jump, target, target2, jump2, deep, passwordOnly] = await Promise.all([
      server({ netns: outer.name, listenAddress: outer.address }),
      server({ netns: outer.name }),
      server({ netns: outer.name }),
      server({ netns: inner.name, listenAddress: inner.address }),
      server({ netns: inner.name }),
      server({ netns: outer.name, listenAddress: outer.address, extraConfig: ['PasswordAuthentication yes', 'PubkeyAuthentication no'] }),
    ]);
    config = [
      jump.clientConfig('jump'),
      target.clientConfig('target', ['ProxyJump jump']),
      target2.clientConfig('target2', ['ProxyJump jump']),
      jump2.clientConfig('jump2'),
      deep.clientConfig('deep', ['ProxyJump jump,jump2']),
      deep.clientConfig('deep-via-jump', ['ProxyJump jump']),
    ].join('\n');
    t = await engine(config);
  });
  afterAll(async () => {
    for (const e of engines) await e.close();
    await Promise.all(servers.map((s) => s.stop()));
    await inner?.remove();
    await outer?.remove();
  });

  it('only the jump is reachable from here; each further hop is reachable only from the one before', async () => {
    expect(await reachableFromHere(jump.address, jump.port)).toBe(true);
    expect(await reachableFromHere(target.address, target.port)).toBe(false);
    expect(await reachableFromHere(jump2.address, jump2.port)).toBe(false);
    expect(await outer!.canConnect(target.address, target.port)).toBe(true);
    expect(await outer!.canConnect(jump2.address, jump2.port)).toBe(true);
    expect(await outer!.canConnect(deep.address, deep.port)).toBe(false);
    expect(await inner!.canConnect(deep.address, deep.port)).toBe(true);
  });

  it('opens a shell on a host behind a jump and runs a command there', async () => {
    const s = await t.engine.openSession('target', { kind: 'shell', cols: 80, rows: 24 });
    t.engine.writeSession(s.id, 'echo "FROM=${SSH_CONNECTION%% *} TO_PORT=${SSH_CONNECTION##* } SUM=$((40+2))"\n');
    const [, from, toPort] = await t.waitForOutput(s.id, /FROM=(\S+) TO_PORT=(\d+) SUM=42/);
    // The target saw the connection come from its own loopback: the jump made it.
    expect(from).toBe('127.0.0.1');
    expect(Number(toPort)).toBe(target.port);
    expect(await jump.acceptedLogins()).toBe(1);
    expect(await target.acceptedLogins()).toBe(1);
  });

  it('a second host behind the same jump rides the jump’s existing connection', async () => {
    await t.engine.openSession('target', { kind: 'shell', cols: 80, rows: 24 });
    const s = await t.engine.openSession('target2', { kind: 'exec', command: 'echo second-$((6*7))', pty: null });
    await t.waitForOutput(s.id, /second-42/);

    expect(await jump.acceptedLogins()).toBe(1);
    expect(await target2.acceptedLogins()).toBe(1);
    const all = await masters(t);
    expect(all.filter((m) => m.id === jumpId())).toEqual([expect.objectContaining({ state: 'ready', connections: 1 })]);
    const behind = all.filter((m) => m.id.endsWith(' via jump')).map((m) => m.id);
    expect(behind.sort()).toEqual([`${target.user}@127.0.0.1:${target.port} via jump`, `${target2.user}@127.0.0.1:${target2.port} via jump`].sort());
  });

  it('reaches a host two jumps away with `ProxyJump a,b`, each hop logging in once', async () => {
    const first = await t.engine.openSession('deep', { kind: 'exec', command: 'echo "deep FROM=${SSH_CONNECTION%% *}"', pty: null });
    const [, from] = await t.waitForOutput(first.id, /deep FROM=(\S+)/);
    expect(from).toBe('127.0.0.1'); // from the inner namespace's loopback: jump2 made the connection
    const second = await t.engine.openSession('deep', { kind: 'exec', command: 'echo deep-again', pty: null });
    await t.waitForOutput(second.id, /deep-again/);

    expect(await jump.acceptedLogins()).toBe(1); // the chain's first hop is the jump's existing master
    expect(await jump2.acceptedLogins()).toBe(1);
    expect(await deep.acceptedLogins()).toBe(1);
    const ids = (await masters(t)).map((m) => m.id);
    expect(ids).toContain(`${jump2.user}@${jump2.address}:${jump2.port} via jump`);
    expect(ids).toContain(`${deep.user}@127.0.0.1:${deep.port} via jump,jump2`);
  });

  it('the first jump alone cannot reach the host behind the second', async () => {
    const err = await failure(t.engine.connect('deep-via-jump'));
    expect(err.code).toBe('refused');
    expect(err.message).toContain(`jump could not connect onward to 127.0.0.1 port ${deep.port}`);
    expect(await deep.acceptedLogins()).toBe(1); // only the login through jump2, earlier
  });

  it('a jump that refuses the login fails the host behind it, with an error naming the jump', async () => {
    const wrongKey = join(jump.dir, 'id_wrong');
    await keygen(wrongKey);
    const bad = await engine(
      [
        jump.clientConfig('jump').replace(jump.clientKey, wrongKey),
        target.clientConfig('target', ['ProxyJump jump']),
        jump2.clientConfig('jump2'),
        deep.clientConfig('deep', ['ProxyJump jump,jump2']),
      ].join('\n'),
    );
    const jumpLogins = await jump.acceptedLogins();
    const targetLogins = await target.acceptedLogins();

    const err = await failure(bad.engine.connect('target'));
    expect(err.code).toBe('auth');
    const refused = `Jump host jump: Authentication failed for ${jump.user}@${jump.address}:`;
    expect(err.message.startsWith(refused)).toBe(true);

    const all = await masters(bad);
    expect(all.find((m) => m.id.endsWith(' via jump'))).toMatchObject({ state: 'failed', error: { code: 'auth', message: err.message } });
    expect(all.find((m) => m.id === jumpId())).toMatchObject({ state: 'failed', error: { code: 'auth' } });
    expect(await jump.acceptedLogins()).toBe(jumpLogins);
    expect(await target.acceptedLogins()).toBe(targetLogins); // never reached

    // Further down a chain, the error still names the hop that refused, once.
    const chained = await failure(bad.engine.connect('deep'));
    expect(chained.code).toBe('auth');
    expect(chained.message.startsWith(refused)).toBe(true);
  });

  it('waits for a person logging in to the jump, however long that takes', async () => {
    const e = await engine([passwordOnly.clientConfig('pwjump'), target.clientConfig('target', ['ProxyJump pwjump'])].join('\n'), {
      timing: { connectTimeoutMs: 1000 },
    });
    const logins = await passwordOnly.acceptedLogins();
    const connecting = e.engine.connect('target');
    const prompt = await e.nextPrompt('password');
    expect(prompt.masterId).toBe(`${passwordOnly.user}@${passwordOnly.address}:${passwordOnly.port}`);
    await new Promise((r) => setTimeout(r, 1500)); // longer than the target's connect timeout
    e.engine.answerPrompt(prompt.id, { answers: [TEST_PASSWORD], remember: false, choice: null });
    expect(await connecting).toMatchObject({ state: 'ready', authMethod: 'publickey' });
    expect(await passwordOnly.acceptedLogins()).toBe(logins + 1);
  });

  it('keeps the jump up while a host behind it is in use, and lets it go after', async () => {
    const idleMs = 300;
    const idle = await engine([config, passwordOnly.clientConfig('pwtarget', ['ProxyJump jump'])].join('\n'), { idleTimeoutMs: idleMs });
    const states = async (): Promise<Record<string, string>> => Object.fromEntries((await masters(idle)).map((m) => [m.id, m.state]));
    const targetId = `${target.user}@127.0.0.1:${target.port} via jump`;
    const pwTargetId = `${passwordOnly.user}@${passwordOnly.address}:${passwordOnly.port} via jump`;
    const jumpLogins = await jump.acceptedLogins();

    // A host behind the jump holds it while its person types, longer than the idle timeout.
    const connecting = idle.engine.connect('pwtarget');
    const prompt = await idle.nextPrompt('password');
    await new Promise((r) => setTimeout(r, 3 * idleMs));
    expect((await states())[jumpId()]).toBe('ready');
    idle.engine.answerPrompt(prompt.id, { answers: [TEST_PASSWORD], remember: false, choice: null });
    expect(await connecting).toMatchObject({ state: 'ready' });

    // A shell behind the jump holds it, while the idle host beside it lets go of it.
    const s = await idle.engine.openSession('target', { kind: 'shell', cols: 80, rows: 24 });
    await expect.poll(states).toEqual({ [jumpId()]: 'ready', [targetId]: 'ready', [pwTargetId]: 'closed' });
    await new Promise((r) => setTimeout(r, 3 * idleMs));
    idle.engine.writeSession(s.id, 'echo still-$((40+2))\n');
    await idle.waitForOutput(s.id, /still-42/);
    expect((await states())[jumpId()]).toBe('ready');
    expect(await jump.acceptedLogins()).toBe(jumpLogins + 1); // the jump never had to log in again

    // Once nothing behind it is in use, the host idles out and then the jump.
    idle.engine.closeSession(s.id);
    await expect.poll(states).toEqual({ [jumpId()]: 'closed', [targetId]: 'closed', [pwTargetId]: 'closed' });
  });
});

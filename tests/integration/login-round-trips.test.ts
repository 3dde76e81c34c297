// Round trips a login and the first session on a connection no longer pay, seen from sshd's own
// log at the level where it records each request and packet:
// - the first key file's signature goes with its first request (signKeysAtOnce): no "may I use
//   this key?" round trip first; further key files and keys in an agent are asked about first;
// - sshd's DEBUG notes after a public-key login are answered at once with an SSH_MSG_IGNORE
//   (answerServerDebug): the packet carries the TCP acknowledgement that sshd's Nagle-held
//   reply to the first channel open waits for.
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { keygen, startSshd, type Sshd } from '../fixtures/sshd';

const run = promisify(execFile);
const count = (text: string, line: RegExp): number => text.split('\n').filter((l) => line.test(l)).length;

describe('logging in and opening the first session, against sshd', () => {
  let sshd: Sshd;
  let dir: string;
  const engines: TestEngine[] = [];
  beforeAll(async () => {
    sshd = await startSshd({ extraConfig: ['LogLevel DEBUG3'] });
    dir = await mkdtemp(join(tmpdir(), 'hitch-round-trips-'));
  });
  afterAll(async () => {
    for (const t of engines) await t.close();
    await sshd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Connects `alias` in an engine of its own; resolves with what sshd logged meanwhile (its login included). */
  async function login(config: string, alias: string, opts: { authSock?: string } = {}): Promise<string> {
    const before = (await readFile(sshd.logFile, 'utf8')).length;
    const t = await testEngine(config, { processTrees: false, durableShells: false, ...opts });
    engines.push(t);
    expect(await t.engine.connect(alias)).toMatchObject({ state: 'ready', authMethod: 'publickey' });
    // sshd logs the login's last lines just after it lets the client in.
    await expect.poll(async () => (await readFile(sshd.logFile, 'utf8')).slice(before)).toMatch(/Starting session|sending debug message/);
    return (await readFile(sshd.logFile, 'utf8')).slice(before);
  }

  it('sends a key file’s signature with its first request', async () => {
    const log = await login(sshd.clientConfig('box'), 'box');
    expect(count(log, /attempting public key ssh-ed25519/)).toBe(1);
    expect(log).not.toMatch(/querying public key/);
  });

  it('signs with an RSA key file at once too, with the SHA-2 hash the server asks for', async () => {
    const key = join(dir, 'id_rsa');
    await appendFile(join(sshd.dir, 'authorized_keys'), (await keygen(key, 'rsa')) + '\n');
    const log = await login(sshd.clientConfig('rsa').replace(`IdentityFile ${sshd.clientKey}`, `IdentityFile ${key}`), 'rsa');
    expect(count(log, /attempting public key rsa-sha2-(256|512)/)).toBe(1);
    expect(log).not.toMatch(/querying public key/);
  });

  it('signs only the first key file at once: after the server refuses it, the next is asked about first', async () => {
    const stranger = join(dir, 'id_stranger');
    await keygen(stranger); // not in authorized_keys
    const config = sshd.clientConfig('two').replace(`IdentityFile ${sshd.clientKey}`, `IdentityFile ${stranger}\n  IdentityFile ${sshd.clientKey}`);
    const log = await login(config, 'two');
    expect(count(log, /Failed publickey/)).toBe(1); // the stranger, signed
    expect(count(log, /querying public key ssh-ed25519/)).toBe(1); // the next key
    expect(count(log, /attempting public key ssh-ed25519/)).toBe(2);
  });

  describe('with a key in an ssh-agent', () => {
    let agent: ChildProcess;
    let agentSock: string;
    beforeAll(async () => {
      agentSock = join(dir, 'agent.sock');
      agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
      while (!(await stat(agentSock).then((s) => s.isSocket(), () => false))) await new Promise((r) => setTimeout(r, 20));
      const key = join(dir, 'id_in_agent');
      await appendFile(join(sshd.dir, 'authorized_keys'), (await keygen(key)) + '\n');
      await run('ssh-add', ['-q', key], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
    });
    afterAll(() => {
      agent?.kill();
    });

    it('still asks whether the server takes it before the agent signs', async () => {
      const config = sshd.clientConfig('agent', ['IdentityAgent ' + agentSock]).replace(`  IdentityFile ${sshd.clientKey}\n`, '').replace('IdentitiesOnly yes', 'IdentitiesOnly no').replace('  IdentityAgent none\n', '');
      const log = await login(config, 'agent', { authSock: agentSock });
      expect(count(log, /querying public key ssh-ed25519/)).toBe(1);
      expect(count(log, /attempting public key ssh-ed25519/)).toBe(1);
    });
  });

  it("answers each of sshd's DEBUG notes with an IGNORE as it arrives", async () => {
    const before = (await readFile(sshd.logFile, 'utf8')).length;
    await login(sshd.clientConfig('notes'), 'notes');
    let log = '';
    const deadline = Date.now() + 10_000;
    do {
      await new Promise((r) => setTimeout(r, 50));
      log = (await readFile(sshd.logFile, 'utf8')).slice(before);
    } while (count(log, /Received SSH2_MSG_IGNORE/) < count(log, /sending debug message/) && Date.now() < deadline);
    const notes = count(log, /sending debug message/);
    expect(notes).toBeGreaterThan(0); // sshd does send them after this login
    expect(count(log, /Received SSH2_MSG_IGNORE/)).toBe(notes);
  });
});

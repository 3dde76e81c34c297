// A user logs in however the server wants: a password, the server's own keyboard-interactive
// questions, a key with a passphrase, an ssh-agent, or several of these in a row. Hitch asks
// for what it needs, remembers it in the OS keychain only when asked to, and never writes a
// secret to its log. Every case runs against a real sshd; the keychain is the throwaway Secret
// Service of scripts/with-keyring.sh.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PromptAnswer } from '../../main/engine/masters/prompts';
import type { MasterView, PromptView } from '../../preload/api';
import { transpileSources } from '../fixtures/transpiled';
import { keygen, startSshd, TEST_PASSWORD, type Sshd } from '../fixtures/sshd';
import { type TestEngine, testEngine, testKeychain } from '../fixtures/engine';
import { failure } from '../fixtures/failure';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');

// Remembering writes to the keychain: only to the throwaway one with-keyring.sh makes.
const noKeyring = process.env.HITCH_TEST_KEYRING ? null : 'skipped: no throwaway Secret Service; run through scripts/with-keyring.sh';
const withKeyring = it.skipIf(noKeyring !== null);
const named = (name: string): string => (noKeyring ? `${name} (${noKeyring})` : name);

/** What a person types into a one-field prompt. */
const typed = (text: string, remember = false): PromptAnswer => ({ answers: [text], remember, choice: null });


/** The server's client config for `alias`, minus the key it accepts: only what the test adds can log in. */
function withoutKey(sshd: Sshd, alias: string, extra: string[] = []): string {
  return sshd.clientConfig(alias, extra).replace(`IdentityFile ${sshd.clientKey}`, 'IdentityFile /nonexistent/id_ed25519');
}

async function sshdLog(sshd: Sshd): Promise<string> {
  return readFile(sshd.logFile, 'utf8');
}

const count = (text: string, pattern: RegExp): number => (text.match(new RegExp(pattern.source, 'gm')) ?? []).length;

const promptsOpened = (t: TestEngine): PromptView[] =>
  t.events.flatMap((e) => (e.event === 'prompt.opened' ? [e.payload] : []));

async function masterOf(t: TestEngine, sshd: Sshd): Promise<MasterView | undefined> {
  return (await t.engine.snapshot()).masters.find((m) => m.id.endsWith(`:${sshd.port}`));
}

describe('logging in', () => {
  /** Accepts only passwords (sshd's own check, no PAM). */
  let passwordServer: Sshd;
  /** Accepts only keyboard-interactive, through PAM: one "Password:" question. */
  let kbdServer: Sshd;
  /** Wants a key and then keyboard-interactive, as a server with OTP codes does. */
  let chainedServer: Sshd;
  /** The fixture's default: public keys only. */
  let keyServer: Sshd;
  const engines: TestEngine[] = [];

  const engine = async (config: string, opts: Parameters<typeof testEngine>[1] = {}): Promise<TestEngine> => {
    const t = await testEngine(config, opts);
    engines.push(t);
    return t;
  };

  beforeAll(async () => {
    [passwordServer, kbdServer, chainedServer, keyServer] = await Promise.all([
      startSshd({ extraConfig: ['PasswordAuthentication yes', 'PubkeyAuthentication no'] }),
      startSshd({
        extraConfig: ['UsePAM yes', 'KbdInteractiveAuthentication yes', 'PasswordAuthentication no', 'PubkeyAuthentication no'],
      }),
      startSshd({ extraConfig: ['UsePAM yes', 'KbdInteractiveAuthentication yes', 'AuthenticationMethods publickey,keyboard-interactive'] }),
      startSshd(),
    ]);
  });
  afterAll(async () => {
    for (const t of engines) await t.close();
    await Promise.all([passwordServer, kbdServer, chainedServer, keyServer].map((s) => s?.stop()));
  });

  it('asks for the password and logs in with it', async () => {
    const t = await engine(withoutKey(passwordServer, 'pw'));
    const connecting = t.engine.connect('pw');
    const prompt = await t.nextPrompt('password');
    expect(prompt.title).toBe(`Password for ${passwordServer.user}@127.0.0.1`);
    expect(prompt.message).toBe(`Log in to pw (${passwordServer.user}@127.0.0.1, port ${passwordServer.port}).`);
    expect(prompt.fields).toEqual([{ label: 'Password', secret: true }]);

    t.engine.answerPrompt(prompt.id, typed(TEST_PASSWORD));
    const master = await connecting;
    // Not remembered, so logging in again (after a drop) needs the person.
    expect(master).toMatchObject({ state: 'ready', authMethod: 'password', needsPerson: true, rememberedSecret: false });
    expect((await t.engine.snapshot()).prompts).toEqual([]);
  });

  it('asks again after a wrong password, saying so, until the right one', async () => {
    const failedBefore = count(await sshdLog(passwordServer), /Failed password for /);
    const t = await engine(withoutKey(passwordServer, 'pw'));
    const connecting = t.engine.connect('pw');

    const first = await t.nextPrompt('password');
    t.engine.answerPrompt(first.id, typed('wrong-once'));
    const second = await t.nextPrompt('password');
    expect(second.id).not.toBe(first.id);
    expect(second.message).toBe('Permission denied, please try again.');
    t.engine.answerPrompt(second.id, typed('wrong-twice'));
    const third = await t.nextPrompt('password');
    expect(third.message).toBe('Permission denied, please try again.');
    t.engine.answerPrompt(third.id, typed(TEST_PASSWORD));

    expect(await connecting).toMatchObject({ state: 'ready', authMethod: 'password' });
    await expect.poll(async () => count(await sshdLog(passwordServer), /Failed password for /) - failedBefore).toBe(2);
    expect(t.logLines.filter((l) => ['wrong-once', 'wrong-twice', TEST_PASSWORD].some((typedText) => l.includes(typedText)))).toEqual([]);
  });

  withKeyring(named('remembers the password when asked, and forgets it on request'), async () => {
    const secrets = testKeychain();
    const account = `password:${passwordServer.user}@127.0.0.1:${passwordServer.port}`;
    const config = withoutKey(passwordServer, 'pw');

    const first = await engine(config, { secrets });
    const connecting = first.engine.connect('pw');
    const prompt = await first.nextPrompt('password');
    expect(prompt).toMatchObject({ canRemember: true, keychainProblem: null });
    first.engine.answerPrompt(prompt.id, typed(TEST_PASSWORD, true));
    await connecting;
    // Stored once the server accepted it; the master then no longer needs the person.
    await expect.poll(async () => (await masterOf(first, passwordServer))?.rememberedSecret).toBe(true);
    expect(await masterOf(first, passwordServer)).toMatchObject({ state: 'ready', needsPerson: false });
    expect(await secrets.get(account)).toBe(TEST_PASSWORD);
    // The secret went to ssh2 and the keychain, nowhere else: not the log, not the events.
    expect(first.logLines.length).toBeGreaterThan(0);
    expect(first.logLines.filter((l) => l.includes(TEST_PASSWORD))).toEqual([]);
    expect(JSON.stringify(first.events)).not.toContain(TEST_PASSWORD);

    const second = await engine(config, { secrets });
    expect(await second.engine.connect('pw')).toMatchObject({ state: 'ready', authMethod: 'password', rememberedSecret: true, needsPerson: false });
    expect(promptsOpened(second)).toEqual([]);

    expect((await second.engine.forgetSecrets('pw')).removed).toBeGreaterThanOrEqual(1);
    expect(await secrets.get(account)).toBeNull();

    const third = await engine(config, { secrets });
    const again = third.engine.connect('pw');
    third.engine.answerPrompt((await third.nextPrompt('password')).id, typed(TEST_PASSWORD));
    expect(await again).toMatchObject({ state: 'ready', needsPerson: true, rememberedSecret: false });
  });

  withKeyring(named('remembers only the password that worked, not a wrong one typed before'), async () => {
    const secrets = testKeychain();
    const account = `password:${passwordServer.user}@127.0.0.1:${passwordServer.port}`;
    const t = await engine(withoutKey(passwordServer, 'pw'), { secrets });
    const connecting = t.engine.connect('pw');
    t.engine.answerPrompt((await t.nextPrompt('password')).id, typed('wrong-but-remember-it', true));
    t.engine.answerPrompt((await t.nextPrompt('password')).id, typed(TEST_PASSWORD, false));
    expect(await connecting).toMatchObject({ state: 'ready', needsPerson: true, rememberedSecret: false });
    // Let a (wrong) store of the refused password happen, if it were going to.
    await new Promise((r) => setTimeout(r, 200));
    expect(await secrets.get(account)).toBeNull();
    expect(await masterOf(t, passwordServer)).toMatchObject({ needsPerson: true, rememberedSecret: false });
  });

  it('does not time out while the person is typing the password', async () => {
    const t = await engine(withoutKey(passwordServer, 'slowtyper', ['ConnectTimeout 1']));
    const connecting = t.engine.connect('slowtyper');
    const prompt = await t.nextPrompt('password');
    await new Promise((r) => setTimeout(r, 2500));
    t.engine.answerPrompt(prompt.id, typed(TEST_PASSWORD));
    expect(await connecting).toMatchObject({ state: 'ready', authMethod: 'password' });
  });

  describe('against a server that accepts the connection and then says nothing', () => {
    let silent: Server;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      silent = createServer((s) => sockets.add(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    });

    it('gives up after the ConnectTimeout of the ssh config', async () => {
      const { port } = silent.address() as { port: number };
      const t = await engine(['Host silent', '  HostName 127.0.0.1', `  Port ${port}`, '  ConnectTimeout 1', ''].join('\n'));
      const started = Date.now();
      const err = await failure(t.engine.connect('silent'));
      expect(err.code).toBe('timeout');
      expect(err.message).toMatch(new RegExp(`127\\.0\\.0\\.1 port ${port} did not complete the SSH handshake`));
      expect(Date.now() - started).toBeLessThan(5000); // Hitch's own default would be 20 s
    });
  });

  it("shows the server's own keyboard-interactive question and logs in with the answer", async () => {
    const t = await engine(withoutKey(kbdServer, 'pam'));
    const connecting = t.engine.connect('pam');
    const prompt = await t.nextPrompt('keyboard-interactive');
    expect(prompt.fields).toHaveLength(1);
    expect(prompt.fields[0]!.label).toContain('Password');
    expect(prompt.fields[0]!.secret).toBe(true);
    t.engine.answerPrompt(prompt.id, typed(TEST_PASSWORD));
    expect(await connecting).toMatchObject({ state: 'ready', authMethod: 'keyboard-interactive', needsPerson: true });
    // sshd writes the line just after it lets the client in: wait for it.
    await expect.poll(async () => count(await sshdLog(kbdServer), /Accepted keyboard-interactive\/pam for /)).toBe(1);
  });

  it('logs in with a key and then the code the server asks for, when it wants both', async () => {
    const t = await engine(chainedServer.clientConfig('otp'));
    const connecting = t.engine.connect('otp');
    const prompt = await t.nextPrompt('keyboard-interactive');
    expect(prompt.fields[0]).toMatchObject({ secret: true });
    t.engine.answerPrompt(prompt.id, typed(TEST_PASSWORD));
    expect(await connecting).toMatchObject({ state: 'ready', authMethod: 'publickey+keyboard-interactive' });
    await expect.poll(async () => count(await sshdLog(chainedServer), /Accepted keyboard-interactive\/pam for /)).toBe(1);
    expect(await sshdLog(chainedServer)).toMatch(/Partial publickey for /);
  });

  describe('with a key that has a passphrase', () => {
    let lockedKey: string;
    let config: string;
    beforeAll(async () => {
      lockedKey = join(keyServer.dir, 'id_locked');
      await appendFile(join(keyServer.dir, 'authorized_keys'), (await keygen(lockedKey, 'ed25519', 'pp')) + '\n');
      config = keyServer.clientConfig('locked').replace(`IdentityFile ${keyServer.clientKey}`, `IdentityFile ${lockedKey}`);
    });

    it('asks for the passphrase, again when it is wrong, and logs in with the key', async () => {
      const t = await engine(config);
      const connecting = t.engine.connect('locked');
      const first = await t.nextPrompt('passphrase');
      expect(first.title).toBe('Passphrase for id_locked');
      expect(first.message).toContain(lockedKey);
      t.engine.answerPrompt(first.id, typed('not-the-passphrase'));
      const second = await t.nextPrompt('passphrase');
      expect(second.message).toMatch(/^Wrong passphrase, try again\./);
      t.engine.answerPrompt(second.id, typed('pp'));
      expect(await connecting).toMatchObject({ state: 'ready', authMethod: 'publickey', needsPerson: true });
    });

    withKeyring(named('remembers the passphrase, so the next start needs nobody'), async () => {
      const secrets = testKeychain();
      const first = await engine(config, { secrets });
      const connecting = first.engine.connect('locked');
      first.engine.answerPrompt((await first.nextPrompt('passphrase')).id, typed('pp', true));
      await connecting;
      await expect.poll(async () => (await masterOf(first, keyServer))?.rememberedSecret).toBe(true);
      expect(await secrets.get(`passphrase:${lockedKey}`)).toBe('pp');

      const second = await engine(config, { secrets });
      expect(await second.engine.connect('locked')).toMatchObject({ state: 'ready', authMethod: 'publickey', needsPerson: false });
      expect(promptsOpened(second)).toEqual([]);
      expect((await second.engine.forgetSecrets('locked')).removed).toBe(1);
    });
  });

  it('stops logging in when the person cancels the password prompt, leaving other hosts connected', async () => {
    const t = await engine([keyServer.clientConfig('other'), withoutKey(passwordServer, 'pw')].join('\n'));
    await t.engine.connect('other');
    const connecting = failure(t.engine.connect('pw'));
    t.engine.cancelPrompt((await t.nextPrompt('password')).id);
    const err = await connecting;
    expect(err.code).toBe('cancelled');
    expect(err.message).toBe('Login to pw cancelled.');
    expect((await t.engine.snapshot()).prompts).toEqual([]);

    expect(await masterOf(t, keyServer)).toMatchObject({ state: 'ready' });
    const s = await t.engine.openSession('other', { kind: 'exec', command: 'echo still-$((20+1))', pty: null });
    await t.waitForOutput(s.id, /still-21/);
  });

  describe('with an ssh-agent', () => {
    let agentDir: string;
    let agentSock: string;
    let agent: ChildProcess;
    /** A key the server accepts whose private half only the agent holds; its .pub stays on disk. */
    let agentKey: string;
    const agentConfig = (alias: string, identityFile: string, identitiesOnly: 'yes' | 'no'): string =>
      keyServer
        .clientConfig(alias)
        .replace(`IdentityFile ${keyServer.clientKey}`, `IdentityFile ${identityFile}`)
        .replace('IdentityAgent none', `IdentityAgent ${agentSock}`)
        .replace('IdentitiesOnly yes', `IdentitiesOnly ${identitiesOnly}`);

    beforeAll(async () => {
      agentDir = await mkdtemp(join(tmpdir(), 'hitch-agent-'));
      agentSock = join(agentDir, 'agent.sock');
      agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
      while (!(await stat(agentSock).then((s) => s.isSocket(), () => false))) await new Promise((r) => setTimeout(r, 20));
      agentKey = join(agentDir, 'id_in_agent');
      await appendFile(join(keyServer.dir, 'authorized_keys'), (await keygen(agentKey)) + '\n');
      await run('ssh-add', ['-q', agentKey], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
      await rm(agentKey);
    });
    afterAll(async () => {
      agent?.kill();
      await rm(agentDir, { recursive: true, force: true });
    });

    it("logs in with the agent's key", async () => {
      // IdentitiesOnly no: otherwise ssh offers only the agent keys that belong to an IdentityFile.
      const t = await engine(agentConfig('viaagent', '/nonexistent/id_ed25519', 'no'));
      expect(await t.engine.connect('viaagent')).toMatchObject({ state: 'ready', authMethod: 'publickey' });
      expect(promptsOpened(t)).toEqual([]);
      const { stdout } = await run('ssh-keygen', ['-l', '-f', `${agentKey}.pub`]);
      const fingerprint = stdout.split(' ')[1]!;
      await expect.poll(() => sshdLog(keyServer)).toContain(`ED25519 ${fingerprint}`);
    });

    it("offers only the agent's keys named by IdentityFile when IdentitiesOnly is set, as ssh does", async () => {
      // The IdentityFile's private half is missing, its .pub is not: ssh signs with the agent.
      // One engine each: both aliases name the same destination, so they would share a master.
      const named = await engine(agentConfig('named', agentKey, 'yes'));
      expect(await named.engine.connect('named')).toMatchObject({ state: 'ready', authMethod: 'publickey' });
      const unnamed = await engine(agentConfig('unnamed', '/nonexistent/id_ed25519', 'yes'));
      const err = await failure(unnamed.engine.connect('unnamed'));
      expect(err.code).toBe('auth');
      expect(err.message).toMatch(/refused every method tried \(agent\b/);
    });

    it('says the agent is not reachable when its socket is missing and nothing else works', async () => {
      const missing = join(agentDir, 'gone.sock');
      const t = await engine(withoutKey(keyServer, 'noagent').replace('IdentityAgent none', `IdentityAgent ${missing}`));
      const err = await failure(t.engine.connect('noagent'));
      expect(err.code).toBe('auth');
      expect(err.message).toContain(`ssh-agent not reachable at ${missing}`);
    });
  });

  // The D-Bus address is fixed once a process has talked to the bus, so a process of its own
  // runs the real engine (transpiled to CommonJS) with a session bus address that leads nowhere.
  describe('without a usable keychain', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'hitch-nokeychain-'));
      // The sources as CommonJS, in their layout, so the engine's relative imports resolve.
      await transpileSources(dir);
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('still logs in with the password, saying why it cannot remember it', async () => {
      await writeFile(join(dir, 'ssh_config'), withoutKey(passwordServer, 'pw'));
      // The person ticks "remember" anyway (say, from a UI that went stale): nothing may claim
      // the password is remembered, and reconnecting still needs them.
      const child = `
        const { Engine } = require('./main/engine/engine.js');
        const { osKeychain } = require('./main/engine/masters/keychain.js');
        const { createLogger } = require('./main/engine/log.js');
        const logLines = [];
        const prompts = [];
        const engine = new Engine({
          sshConfigPath: 'ssh_config', sshBinary: 'ssh', dataDir: '.', knownHostsPath: 'known_hosts',
          authSock: undefined, secrets: osKeychain('HitchNoBusTest'), idleTimeoutMs: null,
          log: createLogger((line) => logLines.push(line), 'debug'),
        });
        engine.onEvent((e) => {
          if (e.event !== 'prompt.opened') return;
          prompts.push(e.payload);
          engine.answerPrompt(e.payload.id, { answers: [process.env.ANSWER], remember: true, choice: null });
        });
        (async () => {
          await engine.connect('pw');
          await new Promise((r) => setTimeout(r, 300)); // room for a (wrong) attempt to store it
          const [master] = (await engine.snapshot()).masters;
          engine.shutdown();
          process.stdout.write(JSON.stringify({ prompts, master, logLines }));
        })().catch((err) => {
          process.stdout.write(JSON.stringify({ error: err.message }));
        });
      `;
      await writeFile(join(dir, 'child.cjs'), child);
      const { stdout } = await run(process.execPath, ['child.cjs'], {
        cwd: dir,
        timeout: 20_000,
        env: {
          ...process.env,
          NODE_PATH: join(root, 'node_modules'),
          DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}`,
          ANSWER: TEST_PASSWORD,
        },
      });
      const r = JSON.parse(stdout) as { error?: string; prompts: PromptView[]; master: MasterView; logLines: string[] };
      expect(r.error).toBeUndefined();
      expect(r.prompts).toHaveLength(1);
      expect(r.prompts[0]).toMatchObject({
        kind: 'password',
        canRemember: false,
        keychainProblem:
          'No OS keychain is available (no D-Bus session bus): Hitch will ask for passwords each time instead of remembering them.',
      });
      expect(r.master).toMatchObject({ state: 'ready', authMethod: 'password', needsPerson: true, rememberedSecret: false });
      expect(r.logLines.filter((l) => l.includes(TEST_PASSWORD))).toEqual([]);
    });
  });
});

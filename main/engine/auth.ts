// Chooses what to offer the server, in OpenSSH's order: the agent, each IdentityFile (asking
// for its passphrase if it has one), then password and keyboard-interactive as the server
// allows. Partial success (e.g. `AuthenticationMethods publickey,keyboard-interactive`)
// simply continues with the methods the server still wants. Secrets come from the OS
// keychain when remembered, else from a person through the Prompter; they are handed to
// ssh2 and never logged or kept.
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename } from 'node:path';
import { OpenSSHAgent, utils, type AnyAuthMethod, type IdentityCallback, type NextAuthHandler, type ParsedKey } from 'ssh2';
import type { SecretStore } from './keychain';
import type { Logger } from './log';
import type { Prompter } from './prompts';
import type { ResolvedHost } from './ssh-config';
import { expandHome } from './paths';

export interface AuthDeps {
  authSock: string | undefined;
  secrets: SecretStore;
  prompter: Prompter;
  log: Logger;
}

export interface AuthContext extends AuthDeps {
  host: ResolvedHost;
  masterId: string;
  /** False for automatic reconnects: anything that needs a person fails instead of asking. */
  interactive: boolean;
  /** Stops the connect timeout while a person is being asked, and restarts it after. */
  pauseTimeout(paused: boolean): void;
}

/** What happened during authentication, read when it succeeds or fails. */
export class AuthOutcome {
  /** Methods offered, for the error message: `agent`, `publickey (id_ed25519)`, `password`… */
  readonly tried: string[] = [];
  /** Methods the server accepted, in order (several with partial success). */
  readonly succeeded: string[] = [];
  /** Why some method could not even be tried, e.g. an unreachable agent. */
  readonly notes: string[] = [];
  /** A secret from the keychain was used. */
  rememberedSecret = false;
  /** The person cancelled a prompt: stop, do not report it as a refusal. */
  cancelled = false;
  /** The method now being tried. */
  current: string | null = null;
  /**
   * What a person typed, by keychain account (or ONE_TIME for answers such as OTP codes). A
   * retry replaces the answer the server refused, so only what worked counts.
   */
  private readonly typed = new Map<string, { secret: string; remember: boolean }>();

  personTyped(account: string, secret: string, remember: boolean): void {
    this.typed.set(account, { secret: remember ? secret : '', remember }); // kept only to be stored
  }

  /** A person typed something that is not remembered: reconnecting would need them again. */
  get needsPerson(): boolean {
    return [...this.typed.values()].some((t) => !t.remember);
  }

  /** Secrets to store once authentication succeeded, as the person asked. */
  get toRemember(): { account: string; secret: string }[] {
    return [...this.typed].filter(([, t]) => t.remember).map(([account, t]) => ({ account, secret: t.secret }));
  }
}

/** The `typed` key of answers that are never remembered, such as one-time codes. */
const ONE_TIME = 'one-time answer';

export function passwordAccount(host: ResolvedHost): string {
  return `password:${host.user}@${host.hostname}:${host.port}`;
}

export function passphraseAccount(keyFile: string): string {
  return `passphrase:${keyFile}`;
}

const MAX_ATTEMPTS = 3; // as OpenSSH's NumberOfPasswordPrompts

type Method = 'agent' | 'publickey' | 'password' | 'keyboard-interactive';

interface Candidate {
  method: Method;
  /** Produces what to offer, or null to skip this candidate. */
  prepare(): Promise<AnyAuthMethod | null>;
}

/** An agent offering only some of its keys: those of the IdentityFiles, with IdentitiesOnly. */
class IdentitiesOnlyAgent extends OpenSSHAgent {
  constructor(
    socketPath: string,
    private readonly allowed: Buffer[],
  ) {
    super(socketPath);
  }

  override getIdentities(cb: IdentityCallback<ParsedKey>): void {
    super.getIdentities((err, keys) => cb(err, (keys as ParsedKey[] | undefined)?.filter((k) => this.allowed.some((a) => a.equals(k.getPublicSSH())))));
  }
}

/** The public keys of identity files, as ssh finds them: `file.pub`, else an unencrypted `file`. */
async function publicKeysOf(files: string[]): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  for (const file of files) {
    for (const source of [`${file}.pub`, file]) {
      const parsed = utils.parseKey((await readFile(source).catch(() => null)) ?? '');
      if (!(parsed instanceof Error)) {
        keys.push(parsed.getPublicSSH());
        break;
      }
    }
  }
  return keys;
}

export function createAuthHandler(ctx: AuthContext, outcome: AuthOutcome) {
  const { host, log } = ctx;
  const target = `${host.user}@${host.hostname}`;
  let keychainStatus: Promise<{ ok: true } | { ok: false; reason: string }> | null = null;
  const keychain = (): Promise<{ ok: true } | { ok: false; reason: string }> =>
    (keychainStatus ??= ctx.secrets.status().catch((err: Error) => ({ ok: false as const, reason: err.message })));

  const remembered = async (account: string): Promise<string | null> => {
    if (!(await keychain()).ok) return null;
    try {
      return await ctx.secrets.get(account);
    } catch (err) {
      log.warn('keychain read failed', { account, error: (err as Error).message });
      return null;
    }
  };

  /** Asks a person, keeping the connect timeout from running meanwhile. */
  const ask = async (spec: {
    kind: 'password' | 'passphrase' | 'keyboard-interactive';
    title: string;
    message: string;
    fields: { label: string; secret: boolean }[];
    rememberable: boolean;
  }): Promise<{ answers: string[]; remember: boolean } | null> => {
    if (!ctx.interactive) return null;
    // Paused first: a locked keyring may itself ask the person to unlock it.
    ctx.pauseTimeout(true);
    try {
      const status = spec.rememberable ? await keychain() : null;
      const answer = await ctx.prompter.ask({
        masterId: ctx.masterId,
        kind: spec.kind,
        title: spec.title,
        message: spec.message,
        fields: spec.fields,
        canRemember: status?.ok === true,
        keychainProblem: status && !status.ok ? status.reason : null,
      });
      if (!answer) outcome.cancelled = true;
      // "Remember" counts only where it was offered: without a keychain nothing is kept.
      return answer && { answers: answer.answers, remember: answer.remember && status?.ok === true };
    } finally {
      ctx.pauseTimeout(false);
    }
  };

  const agentCandidate: Candidate = {
    method: 'agent',
    async prepare() {
      const setting = host.identityAgent;
      if (setting === 'none') return null;
      const path = setting === null || setting === 'SSH_AUTH_SOCK' ? ctx.authSock : expandHome(setting);
      if (!path) return null;
      // Connected to, not just found: a killed agent leaves its socket behind, refusing connections,
      // and ssh2's error about it would end the whole login instead of the next method being tried.
      const reachable = await new Promise<boolean>((resolve) => {
        const probe = connect(path)
          .once('connect', () => {
            probe.destroy();
            resolve(true);
          })
          .once('error', () => resolve(false));
      });
      if (!reachable) {
        outcome.notes.push(`ssh-agent not reachable at ${path}`);
        return null;
      }
      outcome.tried.push('agent');
      // IdentitiesOnly: as ssh, offer only the agent's keys that belong to an IdentityFile.
      const agent = host.identitiesOnly ? new IdentitiesOnlyAgent(path, await publicKeysOf(host.identityFiles.map(expandHome))) : path;
      return { type: 'agent', username: host.user, agent };
    },
  };

  const keyCandidate = (file: string): Candidate => ({
    method: 'publickey',
    async prepare() {
      const data = await readFile(file).catch(() => null);
      if (!data) return null; // OpenSSH silently skips identity files that do not exist
      let parsed = utils.parseKey(data);
      let passphrase: string | undefined;
      if (parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message)) {
        const account = passphraseAccount(file);
        const saved = await remembered(account);
        if (saved !== null && !(utils.parseKey(data, saved) instanceof Error)) {
          passphrase = saved;
          outcome.rememberedSecret = true;
        } else {
          for (let attempt = 1; attempt <= MAX_ATTEMPTS && passphrase === undefined; attempt++) {
            const answer = await ask({
              kind: 'passphrase',
              title: `Passphrase for ${basename(file)}`,
              message:
                (attempt > 1 ? 'Wrong passphrase, try again. ' : saved !== null ? 'The remembered passphrase no longer fits. ' : '') +
                `Key ${file}, to log in as ${target}.`,
              fields: [{ label: 'Passphrase', secret: true }],
              rememberable: true,
            });
            if (!answer) return null; // cancelled: skip this key, as ssh does on an empty passphrase
            const candidate = answer.answers[0] ?? '';
            if (!(utils.parseKey(data, candidate) instanceof Error)) {
              passphrase = candidate;
              outcome.personTyped(account, candidate, answer.remember);
            }
          }
          if (passphrase === undefined) {
            outcome.notes.push(`wrong passphrase for ${file}`);
            return null;
          }
        }
        parsed = utils.parseKey(data, passphrase);
      }
      if (parsed instanceof Error) {
        outcome.notes.push(`cannot use ${file}: ${parsed.message}`);
        return null;
      }
      outcome.tried.push(`publickey (${basename(file)})`);
      return { type: 'publickey', username: host.user, key: data, passphrase };
    },
  });

  let passwordAttempts = 0;
  let savedPasswordTried = false;
  const passwordCandidate = (): Candidate => ({
    method: 'password',
    async prepare() {
      const account = passwordAccount(host);
      if (!savedPasswordTried) {
        savedPasswordTried = true;
        const saved = await remembered(account);
        if (saved !== null) {
          outcome.tried.push('password (remembered)');
          outcome.rememberedSecret = true;
          return { type: 'password', username: host.user, password: saved };
        }
      }
      if (passwordAttempts >= MAX_ATTEMPTS) return null;
      passwordAttempts++;
      const answer = await ask({
        kind: 'password',
        title: `Password for ${target}`,
        message: passwordAttempts > 1 || outcome.tried.includes('password (remembered)') ? 'Permission denied, please try again.' : `Log in to ${host.alias} (${target}, port ${host.port}).`,
        fields: [{ label: 'Password', secret: true }],
        rememberable: true,
      });
      if (!answer) return null;
      const password = answer.answers[0] ?? '';
      outcome.rememberedSecret = false;
      // Stored only after the server accepted it (see MasterConnection).
      outcome.personTyped(account, password, answer.remember);
      if (!outcome.tried.includes('password')) outcome.tried.push('password');
      return { type: 'password', username: host.user, password };
    },
  });

  let kbdAttempts = 0;
  const kbdCandidate = (): Candidate => ({
    method: 'keyboard-interactive',
    async prepare() {
      // Without a person only one round makes sense: a remembered password may answer it.
      if (kbdAttempts >= (ctx.interactive ? MAX_ATTEMPTS : 1)) return null;
      kbdAttempts++;
      if (!outcome.tried.includes('keyboard-interactive')) outcome.tried.push('keyboard-interactive');
      let savedPasswordUsed = false;
      return {
        type: 'keyboard-interactive',
        username: host.user,
        prompt: (name, instructions, _lang, prompts, finish) => {
          void (async () => {
            if (prompts.length === 0) return finish([]); // servers send empty rounds; answer them
            // A PAM "Password:" round can take the remembered password, once.
            const lone = prompts.length === 1 && !prompts[0]!.echo && /password/i.test(prompts[0]!.prompt);
            if (lone && !savedPasswordUsed && kbdAttempts === 1) {
              savedPasswordUsed = true;
              const saved = await remembered(passwordAccount(host));
              if (saved !== null) {
                outcome.rememberedSecret = true;
                return finish([saved]);
              }
            }
            const answer = await ask({
              kind: 'keyboard-interactive',
              title: name.trim() || `Log in to ${target}`,
              message: instructions.trim() || `${host.alias} asks:`,
              fields: prompts.map((p) => ({ label: p.prompt.trim(), secret: !p.echo })),
              rememberable: lone,
            });
            if (!answer) return finish([]);
            if (lone) outcome.personTyped(passwordAccount(host), answer.answers[0] ?? '', answer.remember);
            else outcome.personTyped(ONE_TIME, '', false);
            finish(answer.answers);
          })();
        },
      };
    },
  });

  const candidates: Candidate[] = [agentCandidate, ...host.identityFiles.map((f) => keyCandidate(expandHome(f)))];
  let nextKey = 0;

  return (methodsLeft: string[] | null, partialSuccess: boolean | null, next: NextAuthHandler): void => {
    if (partialSuccess && outcome.current) outcome.succeeded.push(outcome.current);
    // What the server still accepts (before it has said: everything), as far as the config allows.
    const allowed = new Set((methodsLeft ?? host.authMethods).filter((m) => (host.authMethods as string[]).includes(m)));
    void (async () => {
      while (!outcome.cancelled) {
        let candidate: Candidate | undefined;
        if (allowed.has('publickey') && nextKey < candidates.length) candidate = candidates[nextKey++];
        else if (allowed.has('keyboard-interactive') && kbdAttempts < (ctx.interactive ? MAX_ATTEMPTS : 1)) candidate = kbdCandidate();
        else if (allowed.has('password') && (passwordAttempts < MAX_ATTEMPTS || !savedPasswordTried)) candidate = passwordCandidate();
        if (!candidate) break;
        const offer = await candidate.prepare();
        if (!offer) {
          // A skipped password or keyboard-interactive round still counts as an attempt.
          if (candidate.method === 'keyboard-interactive' || candidate.method === 'password') {
            if (outcome.cancelled || !ctx.interactive) break;
          }
          continue;
        }
        outcome.current = candidate.method === 'agent' ? 'publickey' : candidate.method;
        next(offer);
        return;
      }
      outcome.current = null;
      (next as unknown as (m: false) => void)(false); // ssh2: false ends authentication
    })().catch((err: unknown) => {
      log.error('authentication step failed', { error: String(err) });
      (next as unknown as (m: false) => void)(false);
    });
  };
}

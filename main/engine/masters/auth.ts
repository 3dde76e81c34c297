// Chooses what to offer the server, in OpenSSH's order: the agent, each IdentityFile (asking
// for its passphrase if it has one), then password and keyboard-interactive as the server
// allows. Partial success (e.g. `AuthenticationMethods publickey,keyboard-interactive`)
// simply continues with the methods the server still wants. Secrets come from the OS
// keychain when remembered, else from a person through the Prompter; they are handed to
// ssh2 and never logged or kept.
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename } from 'node:path';
import { OpenSSHAgent, utils, type AnyAuthMethod, type IdentityCallback, type KeyboardInteractiveCallback, type NextAuthHandler, type ParsedKey, type Prompt } from 'ssh2';
import type { SecretStore } from './keychain';
import type { Logger } from '../log';
import type { Prompter } from './prompts';
import type { ResolvedHost } from '../config/ssh-config';
import { expandHome } from '../paths';

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

type KeychainStatus = { ok: true } | { ok: false; reason: string };

/** One login's state, shared by its steps: what happened so far, and how often each method ran. */
interface Login {
  ctx: AuthContext;
  outcome: AuthOutcome;
  /** `user@hostname`, as prompts name the account. */
  target: string;
  /** Asked once per login, on first need: whether the keychain can be used at all. */
  keychainStatus: Promise<KeychainStatus> | null;
  /** The publickey offers in order, the agent first, then each IdentityFile; `nextKey` is the next one. */
  keys: Candidate[];
  nextKey: number;
  passwordAttempts: number;
  savedPasswordTried: boolean;
  kbdAttempts: number;
}

/** What a person is asked for, and whether the answer may go to the keychain. */
interface PromptSpec {
  kind: 'password' | 'passphrase' | 'keyboard-interactive';
  title: string;
  message: string;
  fields: { label: string; secret: boolean }[];
  rememberable: boolean;
}

/** ssh2's authHandler: each time the server asks, offers the next method it still accepts. */
export function createAuthHandler(ctx: AuthContext, outcome: AuthOutcome) {
  const { host, log } = ctx;
  const login: Login = {
    ctx,
    outcome,
    target: `${host.user}@${host.hostname}`,
    keychainStatus: null,
    keys: [],
    nextKey: 0,
    passwordAttempts: 0,
    savedPasswordTried: false,
    kbdAttempts: 0,
  };
  login.keys = [
    { method: 'agent', prepare: () => offerAgent(login) },
    ...host.identityFiles.map((f): Candidate => ({ method: 'publickey', prepare: () => offerKeyFile(login, expandHome(f)) })),
  ];

  return (methodsLeft: string[] | null, partialSuccess: boolean | null, next: NextAuthHandler): void => {
    if (partialSuccess && outcome.current) outcome.succeeded.push(outcome.current);
    // What the server still accepts (before it has said: everything), as far as the config allows.
    const allowed = new Set((methodsLeft ?? host.authMethods).filter((m) => (host.authMethods as string[]).includes(m)));
    void offerNext(login, allowed, next).catch((err: unknown) => {
      log.error('authentication step failed', { error: String(err) });
      endAuthentication(next);
    });
  };
}

/** Prepares candidates in order until one has something to offer, and hands it to ssh2. */
async function offerNext(login: Login, allowed: Set<string>, next: NextAuthHandler): Promise<void> {
  const { ctx, outcome } = login;
  while (!outcome.cancelled) {
    const candidate = nextCandidate(login, allowed);
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
  endAuthentication(next);
}

/** The method order: publickey (agent, then each IdentityFile), keyboard-interactive, password. */
function nextCandidate(login: Login, allowed: Set<string>): Candidate | undefined {
  if (allowed.has('publickey') && login.nextKey < login.keys.length) return login.keys[login.nextKey++];
  if (allowed.has('keyboard-interactive') && login.kbdAttempts < keyboardInteractiveRounds(login.ctx)) {
    return { method: 'keyboard-interactive', prepare: () => offerKeyboardInteractive(login) };
  }
  if (allowed.has('password') && (login.passwordAttempts < MAX_ATTEMPTS || !login.savedPasswordTried)) {
    return { method: 'password', prepare: () => offerPassword(login) };
  }
  return undefined;
}

function endAuthentication(next: NextAuthHandler): void {
  (next as unknown as (m: false) => void)(false); // ssh2: false ends authentication
}

/** Without a person only one round makes sense: a remembered password may answer it. */
function keyboardInteractiveRounds(ctx: AuthContext): number {
  return ctx.interactive ? MAX_ATTEMPTS : 1;
}

/** The agent (IdentityAgent, else SSH_AUTH_SOCK), if one answers there; null to skip it. */
async function offerAgent(login: Login): Promise<AnyAuthMethod | null> {
  const { ctx, outcome } = login;
  const { host } = ctx;
  const setting = host.identityAgent;
  if (setting === 'none') return null;
  const path = setting === null || setting === 'SSH_AUTH_SOCK' ? ctx.authSock : expandHome(setting);
  if (!path) return null;
  if (!(await agentReachable(path))) {
    outcome.notes.push(`ssh-agent not reachable at ${path}`);
    return null;
  }
  outcome.tried.push('agent');
  // IdentitiesOnly: as ssh, offer only the agent's keys that belong to an IdentityFile.
  const agent = host.identitiesOnly ? new IdentitiesOnlyAgent(path, await publicKeysOf(host.identityFiles.map(expandHome))) : path;
  return { type: 'agent', username: host.user, agent };
}

/**
 * Connected to, not just found: a killed agent leaves its socket behind, refusing connections,
 * and ssh2's error about it would end the whole login instead of the next method being tried.
 */
function agentReachable(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = connect(path)
      .once('connect', () => {
        probe.destroy();
        resolve(true);
      })
      .once('error', () => resolve(false));
  });
}

/** One IdentityFile, decrypted if it has a passphrase; null to skip it. */
async function offerKeyFile(login: Login, file: string): Promise<AnyAuthMethod | null> {
  const { ctx, outcome } = login;
  const data = await readFile(file).catch(() => null);
  if (!data) return null; // OpenSSH silently skips identity files that do not exist
  let parsed = utils.parseKey(data);
  let passphrase: string | undefined;
  if (parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message)) {
    const found = await passphraseFor(login, file, data);
    if (found === null) return null;
    passphrase = found;
    parsed = utils.parseKey(data, passphrase);
  }
  if (parsed instanceof Error) {
    outcome.notes.push(`cannot use ${file}: ${parsed.message}`);
    return null;
  }
  outcome.tried.push(`publickey (${basename(file)})`);
  return { type: 'publickey', username: ctx.host.user, key: data, passphrase };
}

/**
 * The passphrase of an encrypted key: the remembered one while it still fits, else what a
 * person types (MAX_ATTEMPTS tries). Null when there is none: cancelled, or wrong every time.
 */
async function passphraseFor(login: Login, file: string, data: Buffer): Promise<string | null> {
  const { outcome } = login;
  const account = passphraseAccount(file);
  const saved = await remembered(login, account);
  if (saved !== null && !(utils.parseKey(data, saved) instanceof Error)) {
    outcome.rememberedSecret = true;
    return saved;
  }
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const answer = await ask(login, {
      kind: 'passphrase',
      title: `Passphrase for ${basename(file)}`,
      message:
        (attempt > 1 ? 'Wrong passphrase, try again. ' : saved !== null ? 'The remembered passphrase no longer fits. ' : '') +
        `Key ${file}, to log in as ${login.target}.`,
      fields: [{ label: 'Passphrase', secret: true }],
      rememberable: true,
    });
    if (!answer) return null; // cancelled: skip this key, as ssh does on an empty passphrase
    const typed = answer.answers[0] ?? '';
    if (!(utils.parseKey(data, typed) instanceof Error)) {
      outcome.personTyped(account, typed, answer.remember);
      return typed;
    }
  }
  outcome.notes.push(`wrong passphrase for ${file}`);
  return null;
}

/** The remembered password first (once per login), then what a person types; null to skip. */
async function offerPassword(login: Login): Promise<AnyAuthMethod | null> {
  const { ctx, outcome, target } = login;
  const { host } = ctx;
  const account = passwordAccount(host);
  if (!login.savedPasswordTried) {
    login.savedPasswordTried = true;
    const saved = await remembered(login, account);
    if (saved !== null) {
      outcome.tried.push('password (remembered)');
      outcome.rememberedSecret = true;
      return { type: 'password', username: host.user, password: saved };
    }
  }
  if (login.passwordAttempts >= MAX_ATTEMPTS) return null;
  login.passwordAttempts++;
  const answer = await ask(login, {
    kind: 'password',
    title: `Password for ${target}`,
    message: login.passwordAttempts > 1 || outcome.tried.includes('password (remembered)') ? 'Permission denied, please try again.' : `Log in to ${host.alias} (${target}, port ${host.port}).`,
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
}

/** One keyboard-interactive attempt; the server then sends its rounds of prompts. */
async function offerKeyboardInteractive(login: Login): Promise<AnyAuthMethod | null> {
  const { ctx, outcome } = login;
  if (login.kbdAttempts >= keyboardInteractiveRounds(ctx)) return null;
  login.kbdAttempts++;
  if (!outcome.tried.includes('keyboard-interactive')) outcome.tried.push('keyboard-interactive');
  const attempt = { savedPasswordUsed: false };
  return {
    type: 'keyboard-interactive',
    username: ctx.host.user,
    prompt: (name, instructions, _lang, prompts, finish) => {
      void answerRound(login, attempt, { name, instructions, prompts }, finish);
    },
  };
}

/** Answers one round of keyboard-interactive prompts: from the keychain if it can, else a person. */
async function answerRound(
  login: Login,
  attempt: { savedPasswordUsed: boolean },
  round: { name: string; instructions: string; prompts: Prompt[] },
  finish: KeyboardInteractiveCallback,
): Promise<void> {
  const { ctx, outcome } = login;
  const { host } = ctx;
  const { prompts } = round;
  if (prompts.length === 0) return finish([]); // servers send empty rounds; answer them
  // A PAM "Password:" round can take the remembered password, once.
  const lone = prompts.length === 1 && !prompts[0]!.echo && /password/i.test(prompts[0]!.prompt);
  if (lone && !attempt.savedPasswordUsed && login.kbdAttempts === 1) {
    attempt.savedPasswordUsed = true;
    const saved = await remembered(login, passwordAccount(host));
    if (saved !== null) {
      outcome.rememberedSecret = true;
      return finish([saved]);
    }
  }
  const answer = await ask(login, {
    kind: 'keyboard-interactive',
    title: round.name.trim() || `Log in to ${login.target}`,
    message: round.instructions.trim() || `${host.alias} asks:`,
    fields: prompts.map((p) => ({ label: p.prompt.trim(), secret: !p.echo })),
    rememberable: lone,
  });
  if (!answer) return finish([]);
  if (lone) outcome.personTyped(passwordAccount(host), answer.answers[0] ?? '', answer.remember);
  else outcome.personTyped(ONE_TIME, '', false);
  finish(answer.answers);
}

/** Whether the keychain can be used, asked once per login (a locked one may ask the person). */
function keychain(login: Login): Promise<KeychainStatus> {
  return (login.keychainStatus ??= login.ctx.secrets.status().catch((err: Error) => ({ ok: false as const, reason: err.message })));
}

/** A secret from the keychain; null if there is none or the keychain cannot be read. */
async function remembered(login: Login, account: string): Promise<string | null> {
  if (!(await keychain(login)).ok) return null;
  try {
    return await login.ctx.secrets.get(account);
  } catch (err) {
    login.ctx.log.warn('keychain read failed', { account, error: (err as Error).message });
    return null;
  }
}

/** Asks a person, keeping the connect timeout from running meanwhile. */
async function ask(login: Login, spec: PromptSpec): Promise<{ answers: string[]; remember: boolean } | null> {
  const { ctx, outcome } = login;
  if (!ctx.interactive) return null;
  // Paused first: a locked keyring may itself ask the person to unlock it.
  ctx.pauseTimeout(true);
  try {
    const status = spec.rememberable ? await keychain(login) : null;
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
}

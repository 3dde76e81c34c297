// Property-based fuzzing of the API as every transport that runs here carries it: a client's
// connection itself (what Electron IPC hands every message to), the web host's WebSocket and
// the engine's Unix socket. Malformed and hostile messages (wrong shapes, wrong types, huge numbers, deep
// nesting, `__proto__` and `constructor` keys, binary frames, broken JSON) each get one clear
// error reply, never a throw or an `internal` error; the connection stays usable, other clients
// are unaffected, and afterwards the engine still answers and has not grown without bound.
//
// The engine reads a test ssh config whose one host refuses connections at once (127.0.0.1
// port 1), so requests that connect fail quickly and predictably; no sshd is needed.
//
// Every property runs from one seed, printed when the file starts; HITCH_FUZZ_SEED=<seed>
// replays a failure exactly (fast-check's report also names the seed and the shrunk input).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import fc from 'fast-check';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localApi, type Api } from '../../main/api/connection';
import { createRouter, type Router } from '../../main/api/router';
import type { ErrorCode } from '../../main/engine/errors';
import { KeychainError, type SecretStore } from '../../main/engine/masters/keychain';
import { serveEngineSocket, type EngineSocketServer } from '../../main/transport/engine-socket';
import { startWebHost, type WebHost } from '../../main/web/server';
import { isMethod, methods, requestSchemas, wsRequestSchema, type Method, type Reply } from '../../preload/api';
import { testEngine, type TestEngine } from '../fixtures/engine';
import { fuzzSettings } from '../fixtures/fuzz';

// ---------------------------------------------------------------------------------------
// Replaying

const { scale, runs, budget } = fuzzSettings('fuzz-transports', 60_000);
/** Messages each transport must have carried, at scale 1. */
const FLOOD = 10_000;

// ---------------------------------------------------------------------------------------
// Hostile requests

/**
 * A value set as an own property, as JSON.parse makes `__proto__` one (plain assignment would
 * set the prototype). Objects are copied first: a constant such as `{}` is one instance
 * wherever it is picked, and setting it inside itself made a cycle no request can carry.
 */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  const own = value !== DEEP && typeof value === 'object' && value !== null ? structuredClone(value) : value;
  Object.defineProperty(target, key, { value: own, enumerable: true, writable: true, configurable: true });
}

const HUGE = 'x'.repeat(70_000);
/** Arrays nested deeper than any recursive validator or JSON.stringify survives. */
const DEEP = ((): unknown => {
  let v: unknown = [];
  for (let i = 0; i < 20_000; i++) v = [v];
  // fast-check prints counterexamples recursively: this one it prints by name.
  return Object.defineProperty(v as object, fc.toStringMethod, { value: () => 'DEEP /* 20,000 nested arrays */' });
})();

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 40,
    arbitrary: fc.constantFrom<unknown>(
      null,
      undefined,
      true,
      false,
      0,
      -0,
      -1,
      1.5,
      2 ** 31,
      2 ** 53 + 2,
      Number.MAX_SAFE_INTEGER,
      1e308,
      -1e308,
      Number.MIN_VALUE,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      '',
      ' ',
      '\0',
      'a b',
      '-oProxyCommand=touch /tmp/pwned',
      '%h%%',
      '../../etc/passwd',
      '\u202eevil',
      '\ud800',
      '__proto__',
      'constructor',
      's0',
      's1',
      'p1',
      'alpha',
      'ghost',
      [],
      {},
    ),
  },
  { weight: 20, arbitrary: fc.string({ maxLength: 16, unit: 'binary' }) },
  { weight: 10, arbitrary: fc.integer() },
  { weight: 10, arbitrary: fc.double() },
  { weight: 10, arbitrary: fc.anything({ maxDepth: 2, maxKeys: 3 }) },
  // Rare, as they are costly to send and check: a few dozen of each per transport.
  { weight: 1, arbitrary: fc.constantFrom<unknown>(HUGE, DEEP) },
);

/** Keys an attacker tries: prototype pollution, shadowing of built-ins, a valid key of another method. */
const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'then', 'hostId', 'sessionId', 'patch', 'host', ''),
  fc.string({ maxLength: 8 }),
);

/** One valid request per method: the starting point that mutations break (or keep). */
const TEMPLATES: { [M in Method]: Record<string, unknown> } = {
  'client.identify': { key: 'fuzz-client-key-0001' },
  'state.get': { watch: true },
  'hosts.reload': {},
  'hosts.add': { host: { id: 'fuzzhost', hostname: '127.0.0.1', port: 1 } },
  'hosts.update': { hostId: 'fuzzhost', patch: { port: 2 } },
  'hosts.remove': { hostId: 'fuzzhost' },
  'master.connect': { hostId: 'ghost' },
  'master.disconnect': { hostId: 'ghost' },
  'masters.probe': {},
  'session.open': { hostId: 'ghost', cols: 80, rows: 24 },
  'link.open': { url: 'ssh://ghost', cols: 80, rows: 24 },
  'session.exec': { hostId: 'ghost', command: 'true', cols: 80, rows: 24, pty: false, raw: true },
  'session.write': { sessionId: 's1', data: 'aGk=', encoding: 'base64' },
  'session.eof': { sessionId: 's1' },
  'session.resize': { sessionId: 's1', cols: 80, rows: 24 },
  'session.close': { sessionId: 's1', keep: true },
  'session.attach': { sessionId: 's1', ack: true },
  'session.ack': { sessionId: 's1', chars: 5000 },
  'session.detach': { sessionId: 's1' },
  'session.reopen': { hostId: 'ghost', name: 'hitch-0123456789abcdef', cols: 80, rows: 24 },
  'prompt.answer': { promptId: 'p1', answers: ['yes'], remember: false, choice: 'once' },
  'prompt.cancel': { promptId: 'p1' },
  'secrets.forget': { hostId: 'ghost' },
  'processes.get': { hostId: 'ghost' },
  'processes.watch': { hostId: 'ghost', intervalMs: 1000 },
  'processes.signal': { hostId: 'ghost', pid: 100, signal: 'TERM', scope: 'process' },
  'processes.stop': { hostId: 'ghost', pid: 100, scope: 'tree', graceMs: 0 },
  'settings.get': {},
  'settings.update': { patch: { theme: 'dark', recentHosts: [] } },
  'bench.run': { hostId: 'ghost', rounds: 1 },
  'bench.cancel': { hostId: 'ghost' },
  'bench.history': { hostId: 'ghost' },
  'bench.export': { hostId: 'ghost', format: 'csv' },
  'ssh-config.snippet': {},
  'ssh-config.include': { apply: false },
  'forwards.list': { hostId: 'ghost' },
  'forwards.open': { hostId: 'ghost', kind: 'local', listenPort: 0, connectHost: 'localhost', connectPort: 80 },
  'forwards.cancel': { forwardId: 'f1' },
  'forwards.save': { forwardId: 'f1', saved: true },
  'files.list': { hostId: 'ghost', path: '.' },
  'files.mkdir': { hostId: 'ghost', path: 'fuzz-dir' },
  'files.rename': { hostId: 'ghost', from: 'a', to: 'b' },
  'files.delete': { hostId: 'ghost', path: 'fuzz-dir' },
  'files.cwd': { sessionId: 's1' },
  'transfer.start': { hostId: 'ghost', direction: 'download', localPath: '/nonexistent/fuzz', remotePath: 'x', ifExists: 'fail' },
  'transfer.cancel': { transferId: 't1' },
  'transfers.list': {},
};

/** Hosts a valid-looking request may name: unknown ones, the config's host (refuses at once) and one added through the API. */
const HOST_IDS = ['ghost', 'alpha', 'fuzzhost', 'nobody.example'];
/** ssh:// links: to the known host, to unknown ones (a prompt the test's stand-in person cancels), and not links at all. */
const LINKS = ['ssh://alpha', 'ssh://fuzz@127.0.0.1:1', 'ssh://nobody.example', 'ssh://u:secret@alpha', 'ssh://alpha/path?q', 'ssh://[::1]:1', 'http://alpha', 'ssh://-oProxyCommand=x', 'ssh://%61lpha'];

type Mutation = { drop: number } | { set: number | string; value: unknown } | { inner: string; value: unknown } | { whole: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((drop) => ({ drop })),
  fc.tuple(fc.oneof(fc.nat(), hostileKey), hostileValue).map(([set, value]) => ({ set, value })),
  fc.tuple(hostileKey, hostileValue).map(([inner, value]) => ({ inner, value })),
  hostileValue.map((whole) => ({ whole })),
);

interface Request {
  method: unknown;
  params: unknown;
}

/** A template with its host chosen, then broken by zero to three mutations. */
const templateRequest: fc.Arbitrary<Request> = fc
  .tuple(
    fc.constantFrom(...methods),
    fc.constantFrom(...HOST_IDS),
    fc.constantFrom(...LINKS),
    fc.array(mutation, { minLength: 1, maxLength: 3 }),
    fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 5, arbitrary: fc.constant(false) }), // one in six left valid
  )
  .map(([method, host, link, mutations, keepValid]) => {
    const params: Record<string, unknown> = structuredClone(TEMPLATES[method] ?? {}); // a method added since: fuzzed from nothing
    if ('url' in params) params.url = link;
    if ('hostId' in params) params.hostId = host;
    let result: unknown = params;
    for (const m of keepValid ? [] : mutations) {
      const keys = Object.keys(params);
      if ('drop' in m) {
        // Nothing to drop from an empty template: a polluting key instead.
        if (keys.length > 0) delete params[keys[m.drop % keys.length]!];
        else setOwn(params, '__proto__', { polluted: true });
      } else if ('set' in m) {
        setOwn(params, typeof m.set === 'number' ? (keys[m.set % Math.max(1, keys.length)] ?? 'extra') : m.set, m.value);
      } else if ('inner' in m) {
        // Inside the free-form records (a host, a patch), where the engine's own schemas decide.
        const record = params.host ?? params.patch;
        setOwn(record && typeof record === 'object' ? (record as Record<string, unknown>) : params, m.inner, m.value);
      } else {
        result = m.whole;
      }
    }
    return { method, params: result };
  });

const hostileMethod = fc.oneof(
  fc.constantFrom<unknown>('', 'state', 'state.get ', 'STATE.GET', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'hosts.add.', 'x'.repeat(65), HUGE),
  hostileValue,
);
const request: fc.Arbitrary<Request> = fc.oneof(
  { weight: 8, arbitrary: templateRequest },
  { weight: 1, arbitrary: fc.record({ method: hostileMethod, params: hostileValue }) },
  { weight: 1, arbitrary: fc.record({ method: fc.constantFrom(...methods), params: hostileValue }) },
);

// ---------------------------------------------------------------------------------------
// What every reply must be

const CODES: ErrorCode[] = [
  'bad-request',
  'unknown-host',
  'unknown-session',
  'not-connected',
  'config',
  'dns',
  'refused',
  'timeout',
  'network',
  'auth',
  'host-key-unknown',
  'host-key-changed',
  'host-key-revoked',
  'channel',
  'max-sessions',
  'cancelled',
  'forbidden', // transfer.start from a page of the web host
];

/** A request as a short line for a failure message (its values can be 70,000 characters long, or 20,000 arrays deep). */
function describeRequest(req: Request): string {
  try {
    const text = JSON.stringify({ method: req.method, params: req.params }, (_k, v: unknown) => (typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…` : v));
    return text === undefined ? String(req.method) : text.length > 400 ? `${text.slice(0, 400)}…` : text;
  } catch {
    return `{"method":${JSON.stringify(String(req.method).slice(0, 80))},"params":<nested too deeply to print>}`;
  }
}

/** The router's answer to `method`/`params`: a clear refusal when they break the contract. */
function expectClearReply(req: Request, reply: Reply): void {
  try {
    checkReply(req, reply);
  } catch (err) {
    throw new Error(`${describeRequest(req)} → ${JSON.stringify(reply).slice(0, 400)}: ${(err as Error).message}`);
  }
}

function checkReply(req: Request, reply: Reply): void {
  expect(Object.keys(reply).sort()).toEqual(reply.ok ? ['ok', 'result'] : ['error', 'ok']);
  const valid = isMethod(req.method) && requestSchemas[req.method].safeParse(req.params ?? {}).success;
  if (!valid) {
    expect(reply.ok).toBe(false);
    if (reply.ok) return;
    expect(reply.error.code).toBe('bad-request');
    expect(reply.error.message).toMatch(isMethod(req.method) ? /^Invalid parameters for [a-z.-]+( at "[^]*")?: [^]+\.$/ : /^Unknown method ("[^]{0,64}"|a [a-z]+)\.$/);
    return;
  }
  if (reply.ok) return;
  // Well-formed requests may still fail (no such host, nothing listening), but clearly, and never as `internal`.
  expect(CODES).toContain(reply.error.code);
  expect(reply.error.message).toEqual(expect.any(String));
  expect(reply.error.message.length).toBeGreaterThan(0);
}

function expectSnapshot(reply: Reply): void {
  expect(reply.ok).toBe(true);
  if (!reply.ok) return;
  const snapshot = reply.result as { catalog: { hosts: { id: string }[] }; masters: unknown[]; sessions: unknown[]; prompts: unknown[] };
  expect(snapshot.catalog.hosts.map((h) => h.id)).toContain('alpha');
  expect(Array.isArray(snapshot.masters) && Array.isArray(snapshot.sessions) && Array.isArray(snapshot.prompts)).toBe(true);
}

/** Rejects if `p` has not settled in `ms`: a request that never gets an answer is a failure too. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** The heap after a full collection (the collector is reachable without --expose-gc this way). */
const collectGarbage = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();
function memoryAfterGc(): { heap: number; rss: number } {
  collectGarbage();
  collectGarbage();
  const { heapUsed, rss } = process.memoryUsage();
  return { heap: heapUsed, rss };
}

// ---------------------------------------------------------------------------------------
// Wire messages for the WebSocket and the engine socket

interface WireMessage {
  text: string;
  binary: boolean;
  /** The request inside, when the envelope is one; its id is filled in when sent. */
  request: Request | null;
}

const badEnvelope = fc.oneof(
  fc.record({ method: fc.constantFrom(...methods), params: fc.constant({}) }), // no id
  fc.record({ id: fc.constantFrom<unknown>('1', -1, 1.5, 2 ** 53, null, [], true), method: fc.constant('state.get'), params: fc.constant({}) }),
  fc.record({ id: fc.constant(1), method: fc.oneof(fc.constant(HUGE.slice(0, 65)), hostileValue), params: fc.constant({}) }),
  fc.record({ id: fc.constant(1), method: fc.constant('state.get'), params: fc.constant({}), extra: hostileValue }),
  hostileValue,
);

const wireMessage: fc.Arbitrary<WireMessage> = fc.oneof(
  { weight: 12, arbitrary: request.map((r) => ({ text: '', binary: false, request: r })) },
  { weight: 2, arbitrary: badEnvelope.map((e) => ({ text: wireJson(e), binary: false, request: null })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '',
        ' ',
        '{',
        '[',
        '}',
        'null',
        '1',
        '"x"',
        'true',
        '{"id":1e400,"method":"state.get","params":{}}',
        '{"id":1,"method":"state.get","params":{},"__proto__":{"polluted":true}}',
        '{"id":1,"method":"__proto__","params":{}}',
        '{"__proto__":{"id":1,"method":"state.get","params":{}}}',
        '{"id":1,"method":"hosts.add","params":{"host":{"__proto__":{"id":"p","hostname":"127.0.0.1"}}}}',
        '{"id":1,"method":"settings.update","params":{"patch":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}}}',
        `{"id":1,"method":"hosts.add","params":{"host":${'['.repeat(50_000)}${']'.repeat(50_000)}}}`,
        `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`,
        '\u0000\u0001\u0002',
        '\uFEFF{"id":1,"method":"state.get","params":{}}',
      )
      .map((text) => ({ text, binary: false, request: null })),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 64, unit: 'binary' }).map((text) => ({ text, binary: false, request: null })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ text: Buffer.from(b).toString('latin1'), binary: true, request: null })) },
);

/** What a transport must answer to one message: the router's reply to a request, or a fixed refusal. */
type Expected = { id: number; request: Request } | { refusal: string };

const DEEP_TOKEN = '\u0000deep\u0000';
const DEEP_TEXT = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;

/** A value as JSON text; DEEP, which JSON.stringify cannot recurse into, is spliced in as text. */
function wireJson(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (v === DEEP ? DEEP_TOKEN : v)) ?? 'undefined';
  return text.split(JSON.stringify(DEEP_TOKEN)).join(DEEP_TEXT);
}

/** The text sent for a message: its envelope, with a fresh id, as JSON. */
function wireText(message: WireMessage, id: number): string {
  return message.request === null ? message.text : wireJson({ id, method: message.request.method, params: message.request.params });
}

/**
 * What the transport must answer, worked out from the text as the server decodes it (a lone
 * surrogate arrives as U+FFFD; JSON has no undefined, NaN or Infinity). `refused(json)` is the
 * transport's refusal of a JSON value that is not a request, and null when it ignores the text.
 */
function expectationFor(text: string, notJson: string | null, refused: (json: unknown) => string): Expected | null {
  const seen = Buffer.from(text).toString();
  let json: unknown;
  try {
    json = JSON.parse(seen);
  } catch {
    return notJson === null ? null : { refusal: notJson };
  }
  const envelope = wsRequestSchema.safeParse(json);
  if (!envelope.success) return { refusal: refused(json) };
  return { id: envelope.data.id, request: { method: envelope.data.method, params: envelope.data.params } };
}

/** A refusal as it arrives: its id echoed when a number (as JSON writes it: Infinity is null), else null. */
const refusal = (id: unknown, message: string): string => `${JSON.stringify(typeof id === 'number' ? id : null)} ${JSON.stringify({ code: 'bad-request', message })}`;

/** Whether a reply is one of the transport's own refusals (the router never words an error so). */
const isRefusal = (r: Record<string, unknown>, messages: string[]): boolean =>
  r.ok === false && messages.includes((r.error as { message?: string } | undefined)?.message ?? '');

/** Checks one batch's replies against what each message asked for; refusals are counted, not ordered. */
function expectRepliesMatch(expected: Expected[], replies: Record<string, unknown>[], refusalMessages: string[]): void {
  expect(replies).toHaveLength(expected.length);
  const refusals = replies.filter((r) => isRefusal(r, refusalMessages)).map((r) => refusal(r.id, (r.error as { message: string }).message));
  const wanted = expected.filter((e): e is { refusal: string } => 'refusal' in e).map((e) => e.refusal);
  expect(refusals.sort()).toEqual(wanted.sort());
  const answers = replies.filter((r) => !isRefusal(r, refusalMessages));
  for (const e of expected) {
    if (!('id' in e)) continue;
    // Ids are unique but for a few fixed texts (id 1): a reply must fit one of the requests sent with its id.
    const candidates = expected.filter((c): c is { id: number; request: Request } => 'id' in c && c.id === e.id);
    const index = answers.findIndex((r) => r.id === e.id);
    expect(index, `a reply to request ${e.id}`).toBeGreaterThanOrEqual(0);
    const rest: Record<string, unknown> = { ...answers.splice(index, 1)[0]! };
    delete rest.id;
    const fits = candidates.some((c) => {
      try {
        checkReply(c.request, rest as unknown as Reply);
        return true;
      } catch {
        return false;
      }
    });
    if (!fits) expectClearReply(candidates[0]!.request, rest as unknown as Reply);
  }
  expect(answers).toEqual([]);
}

// ---------------------------------------------------------------------------------------

/** Secrets kept in memory: the fuzz never touches an OS keychain, and runs the same with or without one. */
function memorySecrets(): SecretStore {
  const secrets = new Map<string, string>();
  return {
    status: async () => ({ ok: true }),
    get: async (account) => secrets.get(account) ?? null,
    set: async (account, secret) => void secrets.set(account, secret),
    delete: async (account) => secrets.delete(account),
  };
}

const CONFIG = 'Host alpha\n  HostName 127.0.0.1\n  Port 1\n  User fuzz\n';

let t: TestEngine;
let router: Router;
let api: Api;
/** One client's calls through a connection of its own, as the Electron shell's IPC makes them. */
let call: (method: unknown, params: unknown) => Promise<Record<string, unknown>>;
let base: string;

/** Calls through a connection, each reply matched by id (ids are the caller's own). */
function connectionCaller(of: Api): typeof call {
  const waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  let nextCall = 0;
  const connection = of.openConnection((message) => {
    const reply = message as Record<string, unknown>;
    if (typeof reply.id !== 'number') return;
    waiting.get(reply.id)?.(reply);
    waiting.delete(reply.id);
  });
  return (method, params) =>
    new Promise((resolve) => {
      const id = ++nextCall;
      waiting.set(id, resolve);
      connection.request({ id, method, params });
    });
}

/** The reply without its id, as the router worded it. */
function withoutId(reply: Record<string, unknown>): Reply {
  const rest = { ...reply };
  delete rest.id;
  return rest as unknown as Reply;
}

beforeAll(async () => {
  t = await testEngine(CONFIG, { timing: { connectTimeoutMs: 2_000 }, secrets: memorySecrets() });
  router = createRouter(t.engine, t.engine.options.log);
  api = localApi(router);
  call = connectionCaller(api);
  // The person at the screen: cancels every prompt (a link to an unknown host asks first),
  // unless a fuzzed prompt.answer or prompt.cancel got there first.
  t.engine.onEvent((e) => {
    if (e.event !== 'prompt.opened') return;
    setImmediate(() => {
      try {
        t.engine.cancelPrompt(e.payload.id);
      } catch {
        // answered or cancelled already
      }
    });
  });
  base = await mkdtemp(join(tmpdir(), 'hitch-fuzz-transports-'));
});

afterAll(async () => {
  await t?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

/** After a flood: the engine answers state.get correctly, nobody's prototype changed, no `internal` failure was logged. */
async function expectEngineUnharmed(before: { heap: number; rss: number }): Promise<void> {
  expectSnapshot(withoutId(await within(call('state.get', {}), 10_000, 'state.get after the flood')));
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.keys(Object.prototype)).toEqual([]);
  expect(t.logLines.filter((l) => /"msg":"request failed"/.test(l))).toEqual([]);
  // A loose bound: a few MB is normal (measured: under 10 MB of heap, under 60 MB of RSS per flood).
  const after = memoryAfterGc();
  expect(after.heap - before.heap, 'heap growth').toBeLessThan(100 * 1024 * 1024);
  expect(after.rss - before.rss, 'RSS growth').toBeLessThan(100 * 1024 * 1024);
}

describe('a connection, sent hostile requests', () => {
  // Found by the property below, before it was given a keychain of its own: with no OS keychain
  // (no D-Bus session bus), KeychainError was no HitchError and the router called it internal.
  it('calls a keychain that cannot be reached a keychain problem, not an internal error', async () => {
    const unavailable = (): Promise<never> => Promise.reject(new KeychainError('No OS keychain is available (no D-Bus session bus), so Hitch cannot remove the saved password.'));
    const own = await testEngine(CONFIG, { secrets: { status: async () => ({ ok: false, reason: 'none' }), get: unavailable, set: unavailable, delete: unavailable } });
    try {
      const reply = await connectionCaller(localApi(createRouter(own.engine, own.engine.options.log)))('secrets.forget', { hostId: 'alpha' });
      expect(reply).toMatchObject({ ok: false, error: { code: 'keychain', message: expect.stringMatching(/No OS keychain is available/) } });
    } finally {
      await own.close();
    }
  });

  it('answers each with a clear reply, never a throw or an internal error', budget, async () => {
    const before = memoryAfterGc();
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 50, maxLength: 50 }), async (batch) => {
        // Fifty at once: the engine takes requests concurrently from its transports.
        const replies = await within(Promise.all(batch.map((r) => call(r.method, r.params))), 30_000, 'a batch of calls');
        replies.forEach((reply, i) => {
          // A method that is no string cannot be a request at all: the connection refuses its envelope.
          if (wsRequestSchema.safeParse({ id: 1, method: batch[i]!.method, params: batch[i]!.params }).success) expectClearReply(batch[i]!, withoutId(reply));
          else expect(withoutId(reply)).toEqual({ ok: false, error: { code: 'bad-request', message: ENVELOPE_SHAPE } });
        });
        sent += batch.length;
      }),
      runs(FLOOD / 50),
    );
    expect(sent).toBeGreaterThanOrEqual(FLOOD * Math.min(1, scale));
    await expectEngineUnharmed(before);
  });
});

// ---------------------------------------------------------------------------------------
// The web host

/** What a client of either transport received, and a way to wait for its replies. */
function collector(): {
  received: Record<string, unknown>[];
  add(message: Record<string, unknown>): void;
  replies(from: number, count: number): Promise<Record<string, unknown>[]>;
} {
  const received: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const replies = (from: number, count: number): Promise<Record<string, unknown>[]> =>
    new Promise((resolve) => {
      const check = (): void => {
        const got = received.slice(from).filter((m) => 'ok' in m);
        if (got.length >= count) {
          waiters.delete(check);
          resolve(got);
        }
      };
      waiters.add(check);
      check();
    });
  return {
    received,
    add(message) {
      received.push(message);
      for (const w of waiters) w();
    },
    replies,
  };
}

interface WsClient {
  ws: WebSocket;
  /** Every message received, parsed: replies and events. */
  received: Record<string, unknown>[];
  /** Resolves once `count` replies (messages with `ok`) have arrived since `from`. */
  replies(from: number, count: number): Promise<Record<string, unknown>[]>;
}

async function openWs(host: WebHost): Promise<WsClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${host.port}/api?token=${host.token}`, { origin: `http://127.0.0.1:${host.port}` });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const inbox = collector();
  ws.on('message', (data) => inbox.add(JSON.parse(data.toString()) as Record<string, unknown>));
  return { ws, ...inbox };
}

const JSON_TEXT_ONLY = 'Messages must be JSON text.';
const ENVELOPE_SHAPE = 'A request is {"id": number, "method": string, "params": object}.';

describe('the web host, sent hostile WebSocket messages', () => {
  let host: WebHost;
  let nextId = 1_000_000;

  beforeAll(async () => {
    const staticDir = join(base, 'renderer');
    await mkdir(staticDir);
    await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>Hitch</title>');
    host = await startWebHost({ api, staticDir, log: t.engine.options.log });
  });
  afterAll(() => host?.close());

  it('answers each with one clear reply on a connection that stays usable, and leaves other pages alone', budget, async () => {
    const before = memoryAfterGc();
    const bystander = await openWs(host);
    const bystanderIds = new Set<number>();
    let client = await openWs(host);
    let sent = 0;
    let batches = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(wireMessage, { minLength: 150, maxLength: 200 }), async (batch) => {
        // A fresh page now and then; many messages on each.
        if (++batches % 10 === 0) {
          client.ws.close();
          client = await openWs(host);
        }
        const from = client.received.length;
        const expected: Expected[] = [];
        for (const m of batch) {
          const text = wireText(m, nextId++);
          if (m.binary) {
            client.ws.send(Buffer.from(text, 'latin1'), { binary: true });
            expected.push({ refusal: refusal(null, JSON_TEXT_ONLY) });
          } else {
            client.ws.send(text);
            expected.push(expectationFor(text, refusal(null, JSON_TEXT_ONLY), (json) => refusal((json as { id?: unknown } | null)?.id, ENVELOPE_SHAPE))!);
          }
        }
        // Then one ordinary request: the connection still works.
        const check = nextId++;
        client.ws.send(JSON.stringify({ id: check, method: 'state.get', params: {} }));
        expected.push({ id: check, request: { method: 'state.get', params: {} } });
        const replies = await within(client.replies(from, expected.length), 30_000, 'the replies to a batch');
        expectRepliesMatch(expected, replies, [JSON_TEXT_ONLY, ENVELOPE_SHAPE]);
        expectSnapshot(replies.find((r) => r.id === check) as unknown as Reply);
        sent += batch.length;

        // The other page: its own request answered, and nothing meant for this one.
        const seenByBystander = bystander.received.length;
        const own = nextId++;
        bystanderIds.add(own);
        bystander.ws.send(JSON.stringify({ id: own, method: 'state.get', params: {} }));
        const [answer] = await within(bystander.replies(seenByBystander, 1), 10_000, "the other page's state.get");
        expect(answer!.id).toBe(own);
        expect(bystander.received.filter((m) => 'ok' in m && !bystanderIds.has(m.id as number))).toEqual([]);
      }),
      { ...runs(FLOOD / 150), endOnFailure: true }, // shrinking would replay whole batches for minutes
    );
    expect(sent).toBeGreaterThanOrEqual(FLOOD * Math.min(1, scale));
    client.ws.close();
    bystander.ws.close();
    await expectEngineUnharmed(before);
  });
});

// ---------------------------------------------------------------------------------------
// The engine socket

interface LineClient {
  socket: Socket;
  received: Record<string, unknown>[];
  replies(from: number, count: number): Promise<Record<string, unknown>[]>;
}

async function openLines(path: string): Promise<LineClient> {
  const socket = connect(path);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const inbox = collector();
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      inbox.add(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>);
      pending = pending.slice(nl + 1);
    }
  });
  return { socket, ...inbox };
}

const MALFORMED_JSON = 'Malformed JSON. Each line must be one JSON request: {"id": number, "method": string, "params": object}.';

/** Writes `data` in pieces cut at `cuts` (a line, and a UTF-8 sequence, may arrive in halves). */
function writeInPieces(socket: Socket, data: Buffer, cuts: number[]): void {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, data.length]) {
    if (to > from) socket.write(data.subarray(from, to));
    from = to;
  }
}

describe('the engine socket, sent hostile lines', () => {
  let server: EngineSocketServer;
  let nextId = 2_000_000;

  beforeAll(async () => {
    server = await serveEngineSocket({ api, runtimeDir: join(base, 'run'), log: t.engine.options.log });
  });
  afterAll(() => server?.close());

  it('answers each line with one clear reply on a connection that stays usable, and leaves other clients alone', budget, async () => {
    const before = memoryAfterGc();
    const bystander = await openLines(server.path);
    let client = await openLines(server.path);
    let sent = 0;
    let batches = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(wireMessage, { minLength: 150, maxLength: 200 }), fc.array(fc.nat(), { maxLength: 40 }), async (batch, cuts) => {
        if (++batches % 10 === 0) {
          client.socket.destroy();
          client = await openLines(server.path);
        }
        const from = client.received.length;
        const expected: Expected[] = [];
        const lines: string[] = [];
        for (const m of batch) {
          // One message per line: a newline inside would make it two. Blank lines go unanswered.
          const text = wireText(m, nextId++).replace(/\n/g, ' ');
          lines.push(text);
          if (Buffer.from(text).toString().trim() === '') continue;
          expected.push(expectationFor(text, refusal(null, MALFORMED_JSON), (json) => refusal((json as { id?: unknown } | null)?.id, ENVELOPE_SHAPE))!);
        }
        const check = nextId++;
        lines.push(JSON.stringify({ id: check, method: 'state.get', params: {} }));
        expected.push({ id: check, request: { method: 'state.get', params: {} } });
        writeInPieces(client.socket, Buffer.from(lines.join('\n') + '\n'), cuts);
        const replies = await within(client.replies(from, expected.length), 30_000, 'the replies to a batch');
        expectRepliesMatch(expected, replies, [MALFORMED_JSON, ENVELOPE_SHAPE]);
        expectSnapshot(replies.find((r) => r.id === check) as unknown as Reply);
        sent += batch.length;

        const seenByBystander = bystander.received.length;
        const own = nextId++;
        bystander.socket.write(JSON.stringify({ id: own, method: 'state.get', params: {} }) + '\n');
        const [answer] = await within(bystander.replies(seenByBystander, 1), 10_000, "the other client's state.get");
        expect(answer!.id).toBe(own);
      }),
      { ...runs(FLOOD / 150), endOnFailure: true }, // shrinking would replay whole batches for minutes
    );
    expect(sent).toBeGreaterThanOrEqual(FLOOD * Math.min(1, scale));
    client.socket.destroy();
    bystander.socket.destroy();
    await expectEngineUnharmed(before);
  });
});

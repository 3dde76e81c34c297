// The one place requests enter the engine. Every client's connection (connection.ts, opened
// by each transport: Electron IPC, the web host's WebSocket, the engine socket) hands its
// requests to `call` with the caller, which validates them against the API contract's schemas
// and dispatches them through a table of small handlers.
import { isMethod, requestSchemas, type HitchEvent, type Method, type Params, type Reply, type Result, type SessionView } from '../../preload/api';
import type { Engine } from '../engine/engine';
import { HitchError, toHitchError } from '../engine/errors';
import type { Logger } from '../engine/log';

/** Who is calling: one client of the engine, as its connection knows it. */
export interface Caller {
  /** The name its sessions are held under (engine/owners.ts). */
  readonly owner: string;
  /**
   * From the reply to this call on, the session's output and changes stream to the caller;
   * `ack`: it acknowledges what it has drawn, and the session waits while it falls behind.
   */
  attach(sessionId: string, opts?: { ack?: boolean }): void;
  /** The caller has drawn `chars` more characters of the session's output (session.ack). */
  acknowledge(sessionId: string, chars: number): void;
  detach(sessionId: string): void;
  /** From now on the caller receives state events: catalog, masters, sessions, settings, process trees. */
  watchState(): void;
  /** The caller is the client that held `key` before (a page reloaded): its sessions, if still held. */
  identify(key: string): SessionView[];
}

type Handlers = { [M in Method]: (engine: Engine, params: Params<M>, caller: Caller) => Promise<Result<M>> | Result<M> };

const handlers: Handlers = {
  'client.identify': (_engine, { key }, caller) => ({ sessions: caller.identify(key) }),
  'state.get': (engine, { watch }, caller) => {
    if (watch) caller.watchState();
    return engine.snapshot();
  },
  'hosts.reload': (engine) => engine.reloadCatalog(),
  'hosts.add': (engine, { host }) => engine.addHost(host),
  'hosts.update': (engine, { hostId, patch }) => engine.updateHost(hostId, patch),
  'hosts.remove': (engine, { hostId }) => engine.removeHost(hostId),
  'master.connect': (engine, { hostId }) => engine.connect(hostId),
  'master.disconnect': async (engine, { hostId }) => (await engine.disconnect(hostId), null),
  'masters.probe': async (engine) => ({ masters: await engine.probeMasters() }),
  'session.open': (engine, { hostId, cols, rows }, caller) => opened(caller, engine.openSession(hostId, { kind: 'shell', cols, rows }, { owner: caller.owner })),
  'link.open': (engine, { url, cols, rows }, caller) => opened(caller, engine.openLink(url, { cols, rows }, caller.owner)),
  'session.exec': (engine, { hostId, command, cols, rows, pty, raw }, caller) =>
    opened(caller, engine.openSession(hostId, { kind: 'exec', command, pty: pty ? { cols, rows } : null }, { raw: raw ?? false, owner: caller.owner })),
  'session.write': async (engine, { sessionId, data, encoding }, caller) => (engine.checkHands(sessionId, caller.owner), await engine.writeSession(sessionId, data, encoding), null),
  'session.eof': (engine, { sessionId }, caller) => (engine.checkHands(sessionId, caller.owner), engine.endSessionInput(sessionId), null),
  'session.resize': (engine, { sessionId, cols, rows }, caller) => (engine.checkHands(sessionId, caller.owner), engine.resizeSession(sessionId, cols, rows), null),
  'session.close': (engine, { sessionId, keep }, caller) => (engine.checkHands(sessionId, caller.owner), engine.closeSession(sessionId, keep ?? false), null),
  'session.attach': (engine, { sessionId, ack }, caller) => {
    const replay = engine.attachSession(sessionId, caller.owner);
    caller.attach(sessionId, { ack: ack ?? false });
    return replay;
  },
  'session.ack': (_engine, { sessionId, chars }, caller) => (caller.acknowledge(sessionId, chars), null),
  'session.detach': (_engine, { sessionId }, caller) => (caller.detach(sessionId), null),
  'session.reopen': (engine, { hostId, name, cols, rows }, caller) => opened(caller, engine.reopenDurable(hostId, name, { cols, rows }, caller.owner)),
  'prompt.answer': (engine, { promptId, answers, remember, choice }) => (engine.answerPrompt(promptId, { answers, remember, choice }), null),
  'prompt.cancel': (engine, { promptId }) => (engine.cancelPrompt(promptId), null),
  'secrets.forget': (engine, { hostId }) => engine.forgetSecrets(hostId),
  'processes.get': (engine, { hostId }) => engine.processTree(hostId),
  'processes.watch': async (engine, { hostId, intervalMs }) => (await engine.watchProcesses(hostId, intervalMs), null),
  'processes.signal': async (engine, { hostId, pid, signal, scope }) => ({ outcomes: await engine.signalProcess(hostId, pid, signal, scope) }),
  'processes.stop': async (engine, { hostId, pid, scope, graceMs }) => ({ outcomes: await engine.stopProcess(hostId, pid, scope, graceMs) }),
  'settings.get': (engine) => engine.getSettings(),
  'settings.update': (engine, { patch }) => engine.updateSettings(patch),
  'bench.run': (engine, { hostId, rounds }) => engine.bench(hostId, rounds),
  'bench.cancel': (engine, { hostId }) => (engine.cancelBench(hostId), null),
  'bench.history': async (engine, { hostId }) => ({ reports: await engine.benchReports(hostId) }),
  'bench.export': (engine, { hostId, format }) => engine.exportBench(hostId, format),
  'ssh-config.snippet': (engine) => engine.sshConfigSnippet(),
  'ssh-config.include': (engine, { apply }) => engine.sshConfigInclude(apply),
  'forwards.list': async (engine, { hostId }) => ({ forwards: await engine.listForwards(hostId) }),
  'forwards.open': (engine, params) => engine.openForward(params),
  'forwards.cancel': async (engine, { forwardId }) => (await engine.cancelForward(forwardId), null),
  'forwards.save': (engine, { forwardId, saved }) => engine.saveForward(forwardId, saved),
  'files.list': (engine, { hostId, path }) => engine.listFiles(hostId, path),
  'files.mkdir': (engine, { hostId, path }) => engine.makeDirectory(hostId, path),
  'files.rename': async (engine, { hostId, from, to }) => (await engine.renameFile(hostId, from, to), null),
  'files.delete': async (engine, { hostId, path }) => (await engine.deleteFile(hostId, path), null),
  'files.cwd': (engine, { sessionId }) => engine.sessionCwd(sessionId),
  'transfer.start': (engine, { hostId, direction, localPath, remotePath, ifExists, exact }) => engine.startTransfer({ hostId, direction, localPath, remotePath, ifExists, exact }),
  'transfer.cancel': (engine, { transferId }) => (engine.cancelTransfer(transferId), null),
  'transfers.list': (engine) => ({ transfers: engine.listTransfers() }),
};

/** The one who opens a session streams it from the start, without asking. */
async function opened<T extends SessionView | null>(caller: Caller, session: Promise<T>): Promise<T> {
  const view = await session;
  if (view) caller.attach(view.id);
  return view;
}

/** One engine as its clients see it: calls, events, and clients arriving and leaving. */
export interface Router {
  call(caller: Caller, method: unknown, params: unknown): Promise<Reply>;
  onEvent(listener: (event: HitchEvent) => void): () => void;
  /** A client arrived under `owner`; the sessions it holds (some, when it comes back by its key). */
  clientJoined(owner: string): SessionView[];
  /** A client went; what it holds ends after `graceMs` unless it comes back. */
  clientLeft(owner: string, graceMs: number): void;
  /** A client's transport cannot take more of the session's output now, or can again. */
  holdOutput(sessionId: string, holder: string, on: boolean): void;
  /** The session's output is skipped rather than stopped while held (a durable shell): TERMINAL_FLOW's skip marks apply. */
  skipsHeldOutput(sessionId: string): boolean;
  readonly log: Logger;
}

export function createRouter(engine: Engine, log: Logger): Router {
  return {
    log,
    onEvent: (listener) => engine.onEvent(listener),
    clientJoined: (owner) => engine.clientJoined(owner),
    clientLeft: (owner, graceMs) => engine.clientLeft(owner, graceMs),
    holdOutput: (sessionId, holder, on) => engine.holdOutput(sessionId, holder, on),
    skipsHeldOutput: (sessionId) => engine.skipsHeldOutput(sessionId),
    async call(caller, method, params) {
      if (!isMethod(method)) {
        const name = typeof method === 'string' ? `"${method.slice(0, 64)}"` : `a ${typeof method}`;
        log.warn('request rejected', { reason: 'unknown method' });
        return { ok: false, error: { code: 'bad-request', message: `Unknown method ${name}.` } };
      }
      const parsed = requestSchemas[method].safeParse(params ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue && issue.path.length ? ` at "${issue.path.join('.')}"` : '';
        const message = `Invalid parameters for ${method}${where}: ${issue?.message ?? 'malformed'}.`;
        log.warn('request rejected', { method, reason: message });
        return { ok: false, error: { code: 'bad-request', message } };
      }
      try {
        const handler = handlers[method] as (engine: Engine, params: unknown, caller: Caller) => Promise<unknown> | unknown;
        return { ok: true, result: await handler(engine, parsed.data, caller) };
      } catch (err) {
        const error = toHitchError(err);
        if (!(err instanceof HitchError)) log.error('request failed', { method, error: error.message });
        return { ok: false, error: error.toInfo() };
      }
    },
  };
}

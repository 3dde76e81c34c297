// The one place requests enter the engine. Every transport (Electron IPC, the web host's
// WebSocket, the engine socket) hands every incoming message to `call`, which validates it
// against the API contract's schemas and dispatches it through a table of small handlers.
import { isMethod, requestSchemas, type Method, type Params, type Reply, type Result } from '../../preload/api';
import type { Engine } from '../engine/engine';
import { HitchError, toHitchError } from '../engine/errors';
import type { Logger } from '../engine/log';

type Handlers = { [M in Method]: (engine: Engine, params: Params<M>) => Promise<Result<M>> | Result<M> };

const handlers: Handlers = {
  'state.get': (engine) => engine.snapshot(),
  'hosts.reload': (engine) => engine.reloadCatalog(),
  'hosts.add': (engine, { host }) => engine.addHost(host),
  'hosts.update': (engine, { hostId, patch }) => engine.updateHost(hostId, patch),
  'hosts.remove': (engine, { hostId }) => engine.removeHost(hostId),
  'master.connect': (engine, { hostId }) => engine.connect(hostId),
  'master.disconnect': async (engine, { hostId }) => (await engine.disconnect(hostId), null),
  'session.open': (engine, { hostId, cols, rows }) => engine.openSession(hostId, { kind: 'shell', cols, rows }),
  'link.open': (engine, { url, cols, rows }) => engine.openLink(url, { cols, rows }),
  'session.exec': (engine, { hostId, command, cols, rows, pty, raw }) =>
    engine.openSession(hostId, { kind: 'exec', command, pty: pty ? { cols, rows } : null }, { raw: raw ?? false }),
  'session.write': async (engine, { sessionId, data, encoding }) => (await engine.writeSession(sessionId, data, encoding), null),
  'session.eof': (engine, { sessionId }) => (engine.endSessionInput(sessionId), null),
  'session.resize': (engine, { sessionId, cols, rows }) => (engine.resizeSession(sessionId, cols, rows), null),
  'session.close': (engine, { sessionId, keep }) => (engine.closeSession(sessionId, keep ?? false), null),
  'session.replay': (engine, { sessionId }) => engine.replaySession(sessionId),
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
};

export interface Router {
  call(method: unknown, params: unknown): Promise<Reply>;
}

export function createRouter(engine: Engine, log: Logger): Router {
  return {
    async call(method, params) {
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
        const handler = handlers[method] as (engine: Engine, params: unknown) => Promise<unknown> | unknown;
        return { ok: true, result: await handler(engine, parsed.data) };
      } catch (err) {
        const error = toHitchError(err);
        if (!(err instanceof HitchError)) log.error('request failed', { method, error: error.message });
        return { ok: false, error: error.toInfo() };
      }
    },
  };
}

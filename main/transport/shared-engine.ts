// One engine per user. A desktop app or web host starting up uses the engine that already
// serves the engine socket (`hitch daemon`, another window host), relaying each of its
// clients to it over a socket of its own; only when none answers does it start its own and
// serve the socket itself. Two engines would fight over the same masters, control sockets
// and data files.
import { deferredConnection, localApi, type Api } from '../api/connection';
import { createRouter } from '../api/router';
import type { Engine } from '../engine/engine';
import type { Logger } from '../engine/log';
import {
  connectEngineSocket,
  EngineRunningError,
  engineSocketPath,
  NoEngineError,
  relayToEngineSocket,
  serveEngineSocket,
  type EngineConnection,
  type EngineSocketServer,
} from './engine-socket';

export interface SharedEngineOptions {
  runtimeDir: string;
  log: Logger;
  /** Builds this process's own engine, when no other one runs. */
  createEngine: () => Engine;
  /**
   * The engine in use went away and another took its place (this process's own, or one a
   * peer started first): what the UIs show is stale and should be reloaded.
   */
  onReplaced?: () => void;
}

export interface SharedEngine {
  /** Connections to whichever engine is in use when each is opened. */
  api: Api;
  /** Whether this process runs the engine (true) or uses the one serving the socket. */
  readonly local: boolean;
  readonly socketPath: string;
  close(): Promise<void>;
}

interface Backend {
  local: boolean;
  api: Api;
  close(): Promise<void>;
}

export async function useOrStartEngine(opts: SharedEngineOptions): Promise<SharedEngine> {
  const { log, runtimeDir } = opts;
  const socketPath = engineSocketPath(runtimeDir);
  let closing = false;

  /** `watch` only tells when the engine in use stops; clients have sockets of their own. */
  const remote = (watch: EngineConnection): Backend => {
    watch.onClose((reason) => {
      if (closing) return;
      log.warn('the engine in use stopped; starting or finding another', { reason });
      backend = attach().then(
        (next) => {
          local = next.local;
          opts.onReplaced?.();
          return next;
        },
        (err: Error) => {
          log.error('no engine to use after the previous one stopped', { error: err.message });
          throw err;
        },
      );
      backend.catch(() => undefined);
    });
    log.info('using the running engine', { socket: socketPath });
    return { local: false, api: { openConnection: (send) => relayToEngineSocket(socketPath, send) }, close: async () => watch.close() };
  };

  const startLocal = async (): Promise<Backend> => {
    const engine = opts.createEngine();
    const api = localApi(createRouter(engine, log));
    let server: EngineSocketServer | null = null;
    try {
      server = await serveEngineSocket({ api, runtimeDir, log, masters: engine });
    } catch (err) {
      if (err instanceof EngineRunningError) {
        engine.shutdown();
        throw err;
      }
      // The app still works without the socket; only `hitch` and other hosts cannot reach it.
      log.error('engine socket not served', { error: (err as Error).message });
    }
    return {
      local: true,
      api,
      close: async () => {
        engine.shutdown();
        await server?.close();
      },
    };
  };

  const attach = async (): Promise<Backend> => {
    // Two hosts starting at once: the loser of the race for the socket uses the winner.
    for (let attempt = 0; ; attempt++) {
      try {
        return remote(await connectEngineSocket(socketPath));
      } catch (err) {
        if (!(err instanceof NoEngineError)) throw err;
      }
      try {
        return await startLocal();
      } catch (err) {
        if (!(err instanceof EngineRunningError) || attempt >= 3) throw err;
      }
    }
  };

  let backend: Promise<Backend> = attach();
  let local = (await backend).local;

  return {
    api: {
      openConnection: (send, transport) =>
        deferredConnection(
          backend.then((b) => b.api),
          send,
          transport,
          (err) => send({ id: null, ok: false, error: { code: 'network', message: `No Hitch engine to use: ${err.message}` } }),
        ),
    },
    get local() {
      return local;
    },
    socketPath,
    async close() {
      closing = true;
      await (await backend.catch(() => null))?.close();
    },
  };
}

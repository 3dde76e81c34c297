// `hitch daemon`: the engine without a window, serving the engine socket until it is told to
// stop (SIGTERM, SIGINT). It refuses to start while another engine serves the socket.
import { localApi } from '../api/connection';
import { createRouter } from '../api/router';
import { Engine } from '../engine/engine';
import { createLogger } from '../engine/log';
import { engineOptions } from '../engine/config/options';
import { EngineRunningError, serveEngineSocket, type EngineSocketServer } from '../transport/engine-socket';
import { CliError, type Context } from './context';

export async function daemon(ctx: Context): Promise<number> {
  const log = createLogger();
  const options = engineOptions(ctx.engineFlags, process.env, log);
  const engine = new Engine(options);
  let server: EngineSocketServer;
  try {
    server = await serveEngineSocket({ api: localApi(createRouter(engine, log)), runtimeDir: ctx.runtimeDir, log, masters: engine });
  } catch (err) {
    engine.shutdown();
    if (err instanceof EngineRunningError) {
      throw new CliError(`an engine is already running (it serves ${err.socketPath}); not starting a second one. Use it, or stop it first.`);
    }
    throw new CliError((err as Error).message);
  }
  await ctx.print('daemon', { socket: server.path, pid: process.pid }, (v) => `Hitch engine running (pid ${v.pid}), serving ${v.socket}`);

  // One failing master must never take the others down with the process.
  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: err.stack ?? String(err) }));
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: String(err) }));
  return new Promise<number>((resolve) => {
    const stop = (): void => {
      log.info('engine stopping');
      engine.shutdown();
      void server.close().then(() => resolve(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

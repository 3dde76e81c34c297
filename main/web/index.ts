// `npm run web`: the engine and the UI without Electron, served on 127.0.0.1.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../engine/engine';
import { createLogger } from '../engine/log';
import { engineOptions, engineFlagSpec, runtimeDirOf } from '../engine/config/options';
import { useOrStartEngine } from '../transport/shared-engine';
import { relayedFileStreams } from './relayed-files';
import { startWebHost, type WebHost } from './server';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { ...engineFlagSpec, port: { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'Usage: npm run web -- [--port N] [--ssh-config FILE] [--data-dir DIR] [--known-hosts FILE] [--ssh PATH] [--idle-timeout MINUTES|never] [--runtime-dir DIR]\n' +
        'Serves Hitch on http://127.0.0.1 (never on other interfaces) and prints the URL with its access token.\n' +
        'Uses the Hitch engine already running for this user (hitch daemon, the desktop app) if there is one.\n',
    );
    return;
  }
  const port = values.port === undefined ? Number(process.env.HITCH_WEB_PORT ?? 0) : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${values.port}" is not a port number`);

  const log = createLogger();
  // The engine already running for this user (`hitch daemon`, the desktop app), else our own.
  let host: WebHost | null = null;
  const options = engineOptions(values, process.env, log);
  /** This process's own engine, when it runs one: the page's uploads and downloads stream through it. */
  let own: Engine | null = null;
  let relayed: ReturnType<typeof relayedFileStreams> | null = null;
  const engine = await useOrStartEngine({
    runtimeDir: runtimeDirOf(values, process.env),
    log,
    createEngine: () => (own = new Engine(options)),
    onReplaced: () => {
      host?.dropClients();
      relayed?.close();
    },
  });
  // Files through an engine in another process pass through this computer's disk (relayed-files.ts).
  relayed = relayedFileStreams(engine.api, log);
  host = await startWebHost({
    api: engine.api,
    staticDir: resolve(__dirname, '../renderer'),
    log,
    port,
    token: process.env.HITCH_WEB_TOKEN || undefined,
    files: () => (engine.local ? own : relayed),
  });
  process.stdout.write(`Hitch web host: ${host.url}\n`);
  if (!engine.local) process.stdout.write(`Using the Hitch engine already running at ${engine.socketPath}\n`);

  const stop = (): void => {
    void Promise.all([engine.close(), host?.close()]).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // One failing master must never take the others down with the process.
  process.on('uncaughtException', (err) => log.error('uncaught exception', { error: err.stack ?? String(err) }));
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: String(err) }));
}

main().catch((err: unknown) => {
  process.stderr.write(`hitch: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

// The web host's file routes when the engine runs in another process (the desktop app,
// `hitch daemon`): the engine socket carries the API only, not a page's bytes, so a file
// passes through a private folder on this computer and the engine copies it with
// `transfer.start`, as it would for the desktop app. Both processes are this user's, on this
// computer. Costlier than the engine's own streams (the file is on disk once, and a download
// reaches the browser only once it is all here), but the same queue, resume and errors.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { transferEnded, type HitchEvent, type TransferView } from '../../preload/api';
import { ApiError, HitchClient } from '../../preload/client';
import { inProcessBridge, type Api } from '../api/connection';
import { HitchError } from '../engine/errors';
import type { Logger } from '../engine/log';
import type { FileStreams } from './file-endpoints';


/** FileStreams over the API of an engine elsewhere: one connection of its own, watching transfers. */
export function relayedFileStreams(api: Api, log: Logger): FileStreams & { close(): void } {
  let bridge: ReturnType<typeof inProcessBridge> | null = null;
  let client: HitchClient | null = null;
  const listeners = new Set<(event: HitchEvent) => void>();
  /** Transfers seen to end, the latest few: an end may come before the reply that names the transfer. */
  const endings = new Map<string, TransferView>();

  /** The connection, opened on first use; `state.get` with `watch` brings the transfers' events. */
  const connected = async (): Promise<HitchClient> => {
    if (!client) {
      bridge = inProcessBridge(api);
      client = new HitchClient(bridge);
      bridge.onEvent((message) => {
        const event = message as HitchEvent;
        if (event.event === 'transfer.changed' && transferEnded(event.payload)) {
          endings.set(event.payload.id, event.payload);
          if (endings.size > 100) endings.delete(endings.keys().next().value!);
        }
        for (const listener of listeners) listener(event);
      });
      await client.call('state.get', { watch: true });
    }
    return client;
  };
  /** The engine's errors keep their code (ApiError over the socket); anything else is internal. */
  const call = async <T>(work: (c: HitchClient) => Promise<T>): Promise<T> => {
    try {
      return await work(await connected());
    } catch (err) {
      if (err instanceof ApiError) throw new HitchError(err.info.code, err.info.message);
      throw err;
    }
  };
  /** Resolves with the transfer's last view once it has ended. */
  const ended = (id: string, first: TransferView): Promise<TransferView> =>
    new Promise((resolve) => {
      if (transferEnded(first)) return resolve(first);
      const seen = endings.get(id);
      if (seen) return resolve(seen);
      const listener = (event: HitchEvent): void => {
        if (event.event === 'transfer.changed' && event.payload.id === id && transferEnded(event.payload)) {
          listeners.delete(listener);
          resolve(event.payload);
        }
      };
      listeners.add(listener);
    });
  const scratch = (): Promise<string> => mkdtemp(join(tmpdir(), 'hitch-web-files-'));
  const cleanUp = (dir: string): void => {
    rm(dir, { recursive: true, force: true }).catch((err: Error) => log.warn('could not remove a web transfer folder', { dir, error: err.message }));
  };

  return {
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    cancelTransfer(transferId) {
      void call((c) => c.call('transfer.cancel', { transferId })).catch(() => undefined);
    },
    async uploadFromStream({ hostId, remotePath, name, size, body, ifExists }) {
      const dir = await scratch();
      const local = join(dir, name);
      try {
        await pipeline(body, createWriteStream(local, { mode: 0o600 }));
        const got = (await stat(local)).size;
        if (got !== size) throw new HitchError('bad-request', `The upload ended after ${got} of ${size} bytes.`);
        const transfer = await call((c) => c.call('transfer.start', { hostId, direction: 'upload', localPath: local, remotePath: `${remotePath.replace(/\/+$/, '')}/${name}`, ifExists }));
        void ended(transfer.id, transfer).then(() => cleanUp(dir));
        return transfer;
      } catch (err) {
        cleanUp(dir);
        throw err;
      }
    },
    async downloadToStream({ hostId, remotePath }) {
      const dir = await scratch();
      try {
        const started = await call((c) => c.call('transfer.start', { hostId, direction: 'download', localPath: dir, remotePath }));
        const last = await ended(started.id, started);
        if (last.state !== 'done') throw new HitchError(last.state === 'cancelled' ? 'cancelled' : 'sftp', last.error ?? `The download ${last.state === 'cancelled' ? 'was cancelled' : 'failed'}.`);
        const local = last.localPath ?? join(dir, last.name);
        const size = (await stat(local)).size;
        const readable: Readable = createReadStream(local);
        readable.once('close', () => cleanUp(dir));
        return { transfer: last, size, name: last.name, body: readable };
      } catch (err) {
        cleanUp(dir);
        throw err;
      }
    },
    close() {
      bridge?.close();
      bridge = null;
      client = null;
    },
  };
}

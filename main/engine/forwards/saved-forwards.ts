// Forwards the person asked Hitch to keep, per host, in the data directory (forwards.json):
// set up again whenever the host's master connects, also after a restart. Written whole and
// atomically; a file that cannot be read is kept aside, reported, and the list starts empty.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { FORWARD_KINDS, netHost } from '../../../preload/api';
import { moveAside, saveFile, SerialQueue } from '../atomic-file';
import type { Logger } from '../log';

const FORMAT_VERSION = 1;

const port = z.number().int().min(0).max(65535);

export const savedForwardSchema = z
  .object({
    kind: z.enum(FORWARD_KINDS),
    bindAddress: netHost,
    listenPort: port,
    connectHost: netHost.nullable(),
    connectPort: z.number().int().min(1).max(65535).nullable(),
    /** For a forward asked for any port (0): the one it last had, asked for again after a restart. */
    lastPort: z.number().int().min(1).max(65535).optional(),
  })
  .strict()
  // As forwards.open asks: a target for local and remote ones, none for a dynamic one.
  .refine((f) => (f.kind === 'dynamic' ? f.connectHost === null && f.connectPort === null : f.connectHost !== null && f.connectPort !== null), {
    message: 'a local or remote forward has connectHost and connectPort, a dynamic one neither',
  });

export type SavedForward = z.infer<typeof savedForwardSchema>;

const fileSchema = z
  .object({
    version: z.literal(FORMAT_VERSION),
    hosts: z.record(z.string().min(1).max(255), z.array(savedForwardSchema).max(1000)),
  })
  .strict();

export function sameForward(a: SavedForward, b: SavedForward): boolean {
  return a.kind === b.kind && a.bindAddress === b.bindAddress && a.listenPort === b.listenPort && a.connectHost === b.connectHost && a.connectPort === b.connectPort;
}

export class SavedForwards {
  private hosts = new Map<string, SavedForward[]>();
  private readonly saves = new SerialQueue();
  /** Why the file on disk was not used, if it was not. */
  warning: string | null = null;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** Reads the file; a missing one means none saved, a bad one is kept aside and reported. */
  async load(): Promise<void> {
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    if (text === null) return;
    try {
      const doc = fileSchema.parse(JSON.parse(text));
      this.hosts = new Map(Object.entries(doc.hosts).filter(([, list]) => list.length > 0));
    } catch (err) {
      const backup = await moveAside(this.file);
      const why = err instanceof SyntaxError ? 'it is not valid JSON' : 'it does not match the saved forwards schema';
      this.warning = `Saved forwards file ${this.file} could not be used (${why}); it was kept as ${backup} and no forwards are restored.`;
      this.log.warn('saved forwards', { warning: this.warning });
    }
  }

  /** Hosts with at least one saved forward. */
  hostIds(): string[] {
    return [...this.hosts.keys()];
  }

  of(hostId: string): SavedForward[] {
    return [...(this.hosts.get(hostId) ?? [])];
  }

  has(hostId: string, forward: SavedForward): boolean {
    return (this.hosts.get(hostId) ?? []).some((f) => sameForward(f, forward));
  }

  async add(hostId: string, forward: SavedForward): Promise<void> {
    if (this.has(hostId, forward)) return;
    this.hosts.set(hostId, [...(this.hosts.get(hostId) ?? []), savedForwardSchema.parse(forward)]);
    await this.write();
  }

  /** Keeps the port a forward asked for any port (0) was given, so that a restart asks for it again. */
  async rememberPort(hostId: string, forward: SavedForward, port: number): Promise<void> {
    const list = this.hosts.get(hostId) ?? [];
    const at = list.findIndex((f) => sameForward(f, forward));
    if (at < 0 || forward.listenPort !== 0 || list[at]!.lastPort === port) return;
    this.hosts.set(hostId, list.map((f, i) => (i === at ? { ...f, lastPort: port } : f)));
    await this.write();
  }

  async remove(hostId: string, forward: SavedForward): Promise<void> {
    if (!this.has(hostId, forward)) return;
    const rest = (this.hosts.get(hostId) ?? []).filter((f) => !sameForward(f, forward));
    if (rest.length > 0) this.hosts.set(hostId, rest);
    else this.hosts.delete(hostId);
    await this.write();
  }

  private write(): Promise<void> {
    // The list as it is when this write starts: after a failed save, the next one writes everything.
    return this.saves.run(() =>
      saveFile(this.file, JSON.stringify({ version: FORMAT_VERSION, hosts: Object.fromEntries(this.hosts) }, null, 2) + '\n', 'saved forwards', this.log),
    );
  }
}

// The person's settings, kept in the data directory with a schema. A file that cannot be
// read is reported, kept aside for the person to look at, and the defaults are used.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { moveAside, saveFile, SerialQueue } from '../atomic-file';
import { HitchError } from '../errors';
import type { SettingsView } from '../../../preload/api';
import type { Logger } from '../log';

const FORMAT_VERSION = 1;

export const settingsSchema = z
  .object({
    /** Minutes a master without sessions stays up; null: until disconnected. */
    idleTimeoutMinutes: z.number().min(0).max(10_080).nullable(),
    keepaliveSeconds: z.number().int().min(1).max(3600),
    keepaliveCountMax: z.number().int().min(1).max(100),
    /** How often an open process tree refreshes. */
    processRefreshSeconds: z.number().min(0.25).max(60),
    /** Keep one session channel open ahead of need per connection. */
    spareChannel: z.boolean(),
    theme: z.enum(['system', 'light', 'dark']),
    terminalFontFamily: z.string().min(1).max(200),
    terminalFontSize: z.number().int().min(6).max(48),
    /** Closing the window keeps masters alive in the tray (desktop app). */
    closeToTray: z.boolean(),
    notifications: z.boolean(),
    /** Hosts most recently used, newest first (the launcher's "recent" group). */
    recentHosts: z.array(z.string().max(255)).max(20),
    /** Shells run in tmux on hosts that have it, so they outlive the connection. */
    durableShells: z.boolean(),
    /** Hosts whose shells are ordinary ones even so. */
    notDurableHosts: z.array(z.string().max(255)).max(1000),
    /** Favourite hosts whose master connects at start and after a wake, when logging in needs nobody. */
    warmHosts: z.array(z.string().max(255)).max(1000),
  })
  .strict();

export type Settings = z.infer<typeof settingsSchema>;
// The schema and the API's SettingsView must describe the same thing.
const sameShape: [Settings, SettingsView] extends [SettingsView, Settings] ? true : never = true;
void sameShape;

export const DEFAULT_SETTINGS: Settings = {
  idleTimeoutMinutes: 10,
  keepaliveSeconds: 15,
  keepaliveCountMax: 3,
  processRefreshSeconds: 2,
  spareChannel: true,
  theme: 'system',
  terminalFontFamily: '"DejaVu Sans Mono", Menlo, Consolas, monospace',
  terminalFontSize: 13,
  closeToTray: true,
  notifications: true,
  recentHosts: [],
  durableShells: true,
  notDurableHosts: [],
  warmHosts: [],
};

export class SettingsStore {
  private current: Settings = { ...DEFAULT_SETTINGS };
  private readonly saves = new SerialQueue();
  /** Why the file on disk was not used, if it was not. */
  warning: string | null = null;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** Reads the file; a missing one means defaults, a bad one is kept aside and reported. */
  async load(): Promise<Settings> {
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    if (text === null) return this.current;
    try {
      const doc = z.object({ version: z.literal(FORMAT_VERSION), settings: settingsSchema.partial() }).strict().parse(JSON.parse(text));
      // Settings added by later versions keep their defaults when an older file lacks them.
      this.current = { ...DEFAULT_SETTINGS, ...doc.settings };
    } catch (err) {
      const backup = await moveAside(this.file);
      const why = err instanceof SyntaxError ? 'it is not valid JSON' : 'it does not match the settings schema';
      this.warning = `Settings file ${this.file} could not be used (${why}); it was kept as ${backup} and the defaults are in effect.`;
      this.log.warn('settings', { warning: this.warning });
    }
    return this.current;
  }

  get(): Settings {
    return { ...this.current, recentHosts: [...this.current.recentHosts], notDurableHosts: [...this.current.notDurableHosts] };
  }

  /**
   * Checks a change against the schema, applies it at once (the engine reads settings while
   * the file is written) and saves the file. A save that fails is logged and thrown to the
   * caller; the change stays in effect for this run and the next save writes it again.
   */
  async update(patch: unknown): Promise<Settings> {
    const parsed = settingsSchema.partial().safeParse(patch);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HitchError('bad-request', `Setting ${issue?.path.join('.') || '?'}: ${issue?.message ?? 'invalid'}.`);
    }
    this.current = { ...this.current, ...parsed.data };
    // The settings as they are when this write starts: after a failed save, everything since.
    await this.saves.run(() => saveFile(this.file, JSON.stringify({ version: FORMAT_VERSION, settings: this.current }, null, 2) + '\n', 'settings', this.log));
    return this.get();
  }
}

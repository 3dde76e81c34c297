// Saving settings: a save that fails (the data directory is gone, the disk is full) is
// reported to the caller and in the log, and does not stop later saves; saves never race.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../main/engine/log';
import { DEFAULT_SETTINGS, SettingsStore } from '../../main/engine/config/settings';

const tmp = mkdtempSync(join(tmpdir(), 'hitch-settings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let cases = 0;
function fresh(): { store: SettingsStore; dir: string; file: string; errors: Record<string, unknown>[] } {
  const dir = join(tmp, `case-${++cases}`);
  const file = join(dir, 'settings.json');
  const errors: Record<string, unknown>[] = [];
  const log: Logger = { debug() {}, info() {}, warn() {}, error: (msg, fields) => errors.push({ msg, ...fields }) };
  return { store: new SettingsStore(file, log), dir, file, errors };
}

function saved(file: string): Record<string, unknown> {
  return (JSON.parse(readFileSync(file, 'utf8')) as { settings: Record<string, unknown> }).settings;
}

describe('saving settings', () => {
  it('reports a failed save to the caller and in the log', async () => {
    const { store, dir, file, errors } = fresh();
    await store.load();
    // Tests run as root, so no permission stops a write: a file where the data directory
    // should be does.
    writeFileSync(dir, 'not a directory');
    await expect(store.update({ theme: 'dark' })).rejects.toMatchObject({
      code: 'internal',
      message: expect.stringContaining(`Could not save settings to ${file}`),
    });
    expect(errors).toEqual([expect.objectContaining({ msg: 'settings not saved', file })]);
  });

  it('saves again once the cause of a failed save is gone', async () => {
    const { store, dir, file } = fresh();
    await store.load();
    writeFileSync(dir, 'not a directory');
    await expect(store.update({ theme: 'dark' })).rejects.toThrow();
    rmSync(dir);
    await expect(store.update({ terminalFontSize: 15 })).resolves.toMatchObject({ theme: 'dark', terminalFontSize: 15 });
    // The change whose save failed is written by the next save.
    expect(saved(file)).toEqual({ ...DEFAULT_SETTINGS, theme: 'dark', terminalFontSize: 15 });
  });

  it('keeps saving after several failures in a row', async () => {
    const { store, dir, file } = fresh();
    writeFileSync(dir, 'not a directory');
    for (const size of [10, 11, 12]) await expect(store.update({ terminalFontSize: size })).rejects.toThrow();
    rmSync(dir);
    await store.update({ theme: 'light' });
    expect(saved(file)).toMatchObject({ terminalFontSize: 12, theme: 'light' });
  });

  it('saves one change after another, the last one last', async () => {
    const { store, file } = fresh();
    await Promise.all([7, 8, 9, 10, 11, 12, 13, 14].map((terminalFontSize) => store.update({ terminalFontSize })));
    expect(saved(file)).toMatchObject({ terminalFontSize: 14 });
  });

  it('never refuses a bad value because an earlier save failed', async () => {
    const { store, dir } = fresh();
    writeFileSync(dir, 'not a directory');
    await expect(store.update({ theme: 'dark' })).rejects.toThrow();
    await expect(store.update({ theme: 'purple' })).rejects.toMatchObject({ code: 'bad-request' });
  });
});

// A person's settings: saved with a schema, applied to what the engine does, and a broken
// settings file is reported and kept, never silently replaced.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../main/engine/engine';
import { DEFAULT_SETTINGS } from '../../main/engine/config/settings';
import { startSshd } from '../fixtures/sshd';
import { testEngine } from '../fixtures/engine';

describe('settings', () => {
  it('starts from the defaults and keeps a change across restarts', async () => {
    const t = await testEngine('');
    try {
      expect(await t.engine.getSettings()).toEqual({ settings: DEFAULT_SETTINGS, warning: null });
      const changed = await t.engine.updateSettings({ terminalFontSize: 15, theme: 'dark' });
      expect(changed).toMatchObject({ terminalFontSize: 15, theme: 'dark', keepaliveSeconds: 15 });
      expect(t.events.some((e) => e.event === 'settings.changed' && e.payload.theme === 'dark')).toBe(true);
      const saved = JSON.parse(await readFile(join(t.dir, 'settings.json'), 'utf8')) as { version: number };
      expect(saved.version).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('refuses a value outside the schema, saying which setting', async () => {
    const t = await testEngine('');
    try {
      await expect(t.engine.updateSettings({ terminalFontSize: 200 })).rejects.toMatchObject({ code: 'bad-request', message: expect.stringMatching(/terminalFontSize/) });
      await expect(t.engine.updateSettings({ colour: 'red' })).rejects.toMatchObject({ code: 'bad-request' });
      expect((await t.engine.getSettings()).settings.terminalFontSize).toBe(DEFAULT_SETTINGS.terminalFontSize);
    } finally {
      await t.close();
    }
  });

  it('reports a broken settings file, keeps it aside and uses the defaults', async () => {
    const t = await testEngine('');
    await t.engine.getSettings(); // this engine has read its (missing) file: the broken one is for the next
    await writeFile(join(t.dir, 'settings.json'), '{"version": 1, "settings": {"terminalFontSize": "huge"}}');
    try {
      // A second engine on the same data directory reads the broken file.
      const { dir } = t;
      const engine2 = new Engine({ ...t.engine.options });
      const { settings, warning } = await engine2.getSettings();
      expect(settings).toEqual(DEFAULT_SETTINGS);
      expect(warning).toMatch(/could not be used \(it does not match the settings schema\); it was kept as .*settings\.json\.corrupt-/);
      const kept = (await readdir(dir)).filter((f) => f.startsWith('settings.json.corrupt-'));
      expect(kept).toHaveLength(1);
      expect(await readFile(join(dir, kept[0]!), 'utf8')).toContain('"huge"');
    } finally {
      await t.close();
    }
  });

  it('closes idle masters after the idle timeout the settings give', async () => {
    const sshd = await startSshd();
    const t = await testEngine(sshd.clientConfig('idle'), { idleTimeoutMs: undefined });
    try {
      await t.engine.updateSettings({ idleTimeoutMinutes: 0.005 }); // 300 ms
      const s = await t.engine.openSession('idle', { kind: 'shell', cols: 80, rows: 24 });
      t.engine.closeSession(s.id);
      await expect.poll(async () => (await t.engine.snapshot()).masters[0]?.state, { timeout: 5000 }).toBe('closed');
      expect((await t.engine.getSettings()).settings.recentHosts).toEqual(['idle']);
    } finally {
      await t.close();
      await sshd.stop();
    }
  });
});

// "Use from ssh": the Include line Hitch adds to the person's ssh config. The config is
// replaced atomically (ssh never reads half a file), keeps its mode and owner, and a
// symlinked config stays a symlink whose target gets the change.
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { includeLine, includeSnippet, snippet } from '../../main/engine/control-socket/ssh-config';

const tmp = mkdtempSync(join(tmpdir(), 'hitch-include-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ORIGINAL = 'Host web\n  HostName 10.0.0.1\n';

let cases = 0;
function fresh(): { dir: string; config: string; snip: ReturnType<typeof snippet> } {
  const dir = join(tmp, `case-${++cases}`);
  mkdirSync(join(dir, '.ssh'), { recursive: true, mode: 0o700 });
  const snip = snippet([{ alias: 'web', controlPath: '/run/hitch/web.sock', address: null }], join(dir, 'hitch', 'ssh_config'));
  return { dir, config: join(dir, '.ssh', 'config'), snip };
}

describe('adding the Include line to the ssh config', () => {
  it('replaces the config with a new file rather than writing into it, leaving no temp file', async () => {
    const { config, snip, dir } = fresh();
    writeFileSync(config, ORIGINAL, { mode: 0o600 });
    const before = statSync(config).ino;
    const result = await includeSnippet(config, snip, true);
    expect(result).toMatchObject({ applied: true, alreadyIncluded: false });
    expect(readFileSync(config, 'utf8')).toBe(`${includeLine(snip.path)}\n\n${ORIGINAL}`);
    // A rename put a whole new file in place: a reader saw the old file or the new one.
    expect(statSync(config).ino).not.toBe(before);
    expect(readdirSync(join(dir, '.ssh'))).toEqual(['config']);
  });

  it('keeps the mode of the config it replaces', async () => {
    for (const mode of [0o600, 0o644, 0o400]) {
      const { config, snip } = fresh();
      writeFileSync(config, ORIGINAL);
      chmodSync(config, mode);
      await includeSnippet(config, snip, true);
      expect(statSync(config).mode & 0o7777).toBe(mode);
    }
  });

  it('creates a missing config private to the person', async () => {
    const { config, snip } = fresh();
    await includeSnippet(config, snip, true);
    expect(readFileSync(config, 'utf8')).toBe(`${includeLine(snip.path)}\n`);
    expect(statSync(config).mode & 0o777).toBe(0o600);
  });

  it.skipIf(process.getuid?.() !== 0)('keeps the owner of a config that belongs to someone else, when run as root', async () => {
    const { config, snip } = fresh();
    writeFileSync(config, ORIGINAL, { mode: 0o600 });
    chownSync(config, 4321, 4322);
    await includeSnippet(config, snip, true);
    expect(statSync(config)).toMatchObject({ uid: 4321, gid: 4322 });
  });

  it('leaves a symlinked config a symlink and replaces the file it points to', async () => {
    const { dir, config, snip } = fresh();
    const target = join(dir, 'dotfiles', 'ssh', 'config');
    mkdirSync(join(dir, 'dotfiles', 'ssh'), { recursive: true });
    writeFileSync(target, ORIGINAL, { mode: 0o640 });
    chmodSync(target, 0o640);
    symlinkSync('../dotfiles/ssh/config', config);
    const before = statSync(target).ino;

    await expect(includeSnippet(config, snip, true)).resolves.toMatchObject({ applied: true, configPath: config });
    expect(lstatSync(config).isSymbolicLink()).toBe(true);
    expect(readlinkSync(config)).toBe('../dotfiles/ssh/config');
    expect(readFileSync(target, 'utf8')).toBe(`${includeLine(snip.path)}\n\n${ORIGINAL}`);
    expect(statSync(target).ino).not.toBe(before);
    expect(statSync(target).mode & 0o7777).toBe(0o640);
    expect(readdirSync(join(dir, 'dotfiles', 'ssh'))).toEqual(['config']);
  });

  it('refuses a symlink to nothing, with the line to add, and creates nothing', async () => {
    const { dir, config, snip } = fresh();
    mkdirSync(join(dir, 'dotfiles'));
    symlinkSync(join(dir, 'dotfiles', 'config'), config);
    await expect(includeSnippet(config, snip, true)).rejects.toMatchObject({
      code: 'config',
      message: `Hitch did not change ${config}: it is a symlink to a file that does not exist. Add the line "${includeLine(snip.path)}" at its top yourself.`,
    });
    expect(readdirSync(join(dir, 'dotfiles'))).toEqual([]);
    expect(lstatSync(config).isSymbolicLink()).toBe(true);
    // The preview still shows the change.
    await expect(includeSnippet(config, snip, false)).resolves.toMatchObject({ applied: false, preview: `${includeLine(snip.path)}\n` });
  });

  it('refuses a config that is not a regular file', async () => {
    const { dir, config, snip } = fresh();
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), config);
    await expect(includeSnippet(config, snip, true)).rejects.toMatchObject({ code: 'config', message: expect.stringContaining('is not a regular file') });
    expect(readdirSync(join(dir, 'elsewhere'))).toEqual([]);
  });

  it('refuses a config with other hard links, which a new file would leave behind', async () => {
    const { dir, config, snip } = fresh();
    writeFileSync(config, ORIGINAL);
    linkSync(config, join(dir, 'config-copy'));
    await expect(includeSnippet(config, snip, true)).rejects.toMatchObject({ code: 'config', message: expect.stringContaining('2 hard links') });
    expect(readFileSync(config, 'utf8')).toBe(ORIGINAL);
  });

  it('leaves a config that already includes the snippet untouched', async () => {
    const { config, snip } = fresh();
    writeFileSync(config, `${includeLine(snip.path)}\n${ORIGINAL}`);
    const before = statSync(config).ino;
    await expect(includeSnippet(config, snip, true)).resolves.toMatchObject({ applied: false, alreadyIncluded: true });
    expect(statSync(config).ino).toBe(before);
  });
});

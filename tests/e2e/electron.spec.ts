// The Electron shell itself: the same UI in a sandboxed window, the API over IPC. It needs
// the Electron binary, which its npm package downloads on first use from a host these
// machines cannot reach; elsewhere this runs for real.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { _electron as electron } from '@playwright/test';
import { expect, testFiles, test } from './fixtures';

function electronBinary(): string | null {
  const pkg = resolve('node_modules/electron');
  const pathFile = join(pkg, 'path.txt');
  if (!existsSync(pathFile)) return null;
  const binary = join(pkg, 'dist', readFileSync(pathFile, 'utf8').trim());
  return existsSync(binary) ? binary : null;
}

const binary = electronBinary();

test.describe('Electron shell', () => {
  test.skip(
    binary === null,
    'The Electron binary is not installed: its npm package downloads it from GitHub on first use, which this machine cannot reach.',
  );

  test('opens the host list in a sandboxed window and runs a shell over IPC', async ({ sshd }) => {
    const files = await testFiles(sshd.clientConfig('testhost'));
    const app = await electron.launch({
      executablePath: binary!,
      args: [resolve('out/main/index.js'), '--ssh-config', files.configPath, '--data-dir', files.dataDir],
    });
    try {
      const page = await app.firstWindow();
      // The page sees the API bridge and nothing of Node or Electron.
      const surface = await page.evaluate(() => ({
        require: typeof (globalThis as { require?: unknown }).require,
        process: typeof (globalThis as { process?: unknown }).process,
        hitch: Object.keys((globalThis as { hitch?: object }).hitch ?? {}).sort(),
      }));
      expect(surface).toEqual({ require: 'undefined', process: 'undefined', hitch: ['call', 'onEvent'] });
      const host = page.locator('li[data-host="testhost"]');
      await host.getByRole('button', { name: 'New shell' }).click();
      await expect(host.getByTestId('master-state')).toHaveText('connected');
    } finally {
      await app.close();
      await files.remove();
    }
  });
});

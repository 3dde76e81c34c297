// The Electron shell itself: the same UI in a sandboxed window, the API over IPC. It needs
// the Electron binary, which the electron npm package does not contain: its install script
// (node_modules/electron/install.js, which scripts/setup.sh runs) downloads it from outside the
// npm registry. Where that download could not happen this test is skipped, saying so; where
// the binary is there it runs for real, on a private Xvfb display when there is no display.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { _electron as electron } from '@playwright/test';
import { expect, testFiles, test } from './fixtures';

/** The Electron binary, found as the electron package itself finds it, or why there is none. */
function electronBinary(): { binary: string; skip: null } | { binary: null; skip: string } {
  const pkg = resolve('node_modules/electron');
  if (!existsSync(join(pkg, 'package.json'))) {
    return { binary: null, skip: 'The electron npm package is not installed (node_modules/electron is missing; run npm ci)' };
  }
  const pathFile = join(pkg, 'path.txt');
  const platformPath = existsSync(pathFile)
    ? readFileSync(pathFile, 'utf8').trim()
    : ({ darwin: 'Electron.app/Contents/MacOS/Electron', win32: 'electron.exe' } as Record<string, string>)[process.platform] ?? 'electron';
  const override = process.env.ELECTRON_OVERRIDE_DIST_PATH;
  const binary = override ? join(override, platformPath) : join(pkg, 'dist', platformPath);
  if (existsSync(binary)) return { binary, skip: null };
  if (override) return { binary: null, skip: `The Electron binary is not installed: ${binary} (ELECTRON_OVERRIDE_DIST_PATH) is missing` };
  return {
    binary: null,
    skip:
      `The Electron binary is not installed: ${relative(process.cwd(), binary)} is missing ` +
      '(its download, by node_modules/electron/install.js, comes from outside the npm registry and did not happen on this machine; ' +
      'bash scripts/setup.sh tries it)',
  };
}

/**
 * The display Electron's window opens on: the one this session has, or on Linux without one, a
 * private Xvfb server on the first free display number (Xvfb picks it and writes it to -displayfd).
 */
async function display(): Promise<{ env: Record<string, string>; stop(): Promise<void> }> {
  const none = { env: {}, stop: async () => undefined };
  if (process.platform !== 'linux' || process.env.DISPLAY || process.env.WAYLAND_DISPLAY) return none;
  const xvfb: ChildProcess = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  xvfb.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const number = await new Promise<string>((ok, fail) => {
    let out = '';
    const fd3 = xvfb.stdio[3] as NodeJS.ReadableStream;
    fd3.setEncoding('utf8');
    fd3.on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) ok(out.trim());
    });
    xvfb.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        err.code === 'ENOENT'
          ? new Error('no display and no Xvfb to make one: install xvfb (bash scripts/setup.sh --test does)')
          : err,
      ),
    );
    xvfb.once('exit', (code) => fail(new Error(`Xvfb exited with ${code} before it had a display: ${stderr.trim()}`)));
  });
  return {
    env: { DISPLAY: `:${number}` },
    async stop() {
      if (xvfb.exitCode !== null || xvfb.signalCode !== null) return;
      xvfb.kill('SIGTERM');
      await new Promise((r) => xvfb.once('exit', r));
    },
  };
}

const { binary, skip } = electronBinary();

test.describe('Electron shell', () => {
  test.skip(skip !== null, `${skip}.`);

  test('opens the host list in a sandboxed window and runs a shell over IPC', async ({ sshd }) => {
    const files = await testFiles(sshd.clientConfig('testhost'));
    // Chromium refuses to start as root unless its OS sandbox is off (the README says as much);
    // the renderer's own sandbox, which this test checks, is Electron's and stays on.
    const rootArgs = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
    let screen: Awaited<ReturnType<typeof display>> | undefined;
    try {
      screen = await display();
      const app = await electron.launch({
        executablePath: binary!,
        args: [...rootArgs, resolve('out/main/index.js'), '--ssh-config', files.configPath, '--data-dir', files.dataDir],
        env: { ...(process.env as Record<string, string>), ...screen.env },
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
      }
    } finally {
      await screen?.stop();
      await files.remove();
    }
  });
});

// Playwright fixtures: a real sshd, and Hitch's web host serving the built UI against a test
// ssh config, as `npm run web` would for a user.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { test as base } from '@playwright/test';
import { spawnWebHost } from '../fixtures/web-host-process';
import { startSshd, type Sshd } from '../fixtures/sshd';

export interface WebHostProcess {
  url: string;
  dataDir: string;
  configPath: string;
  stderr: () => string;
}

/** A throwaway directory with an ssh config and a data directory, as a user would have. */
export async function testFiles(sshConfig: string): Promise<{ dir: string; configPath: string; dataDir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hitch-e2e-'));
  const configPath = join(dir, 'ssh_config');
  await writeFile(configPath, sshConfig);
  return { dir, configPath, dataDir: join(dir, 'data'), remove: () => rm(dir, { recursive: true, force: true }) };
}

export async function startWebHostProcess(sshConfig: string): Promise<WebHostProcess & { stop(): Promise<void> }> {
  const files = await testFiles(sshConfig);
  const { configPath, dataDir } = files;
  const host = await spawnWebHost(resolve('out/main/web.js'), ['--ssh-config', configPath, '--data-dir', dataDir]);
  return {
    url: host.url,
    dataDir,
    configPath,
    stderr: host.stderr,
    async stop() {
      if (process.env.HITCH_E2E_DEBUG) process.stderr.write(host.stderr());
      await host.stop();
      await files.remove();
    },
  };
}

export const test = base.extend<{ sshd: Sshd; hitch: WebHostProcess }>({
  // With HITCH_E2E_DEBUG, what the page logs and how its sockets end go to stderr too.
  page: async ({ page }, use) => {
    if (process.env.HITCH_E2E_DEBUG) {
      const at = (): string => new Date().toISOString();
      page.on('console', (m) => process.stderr.write(`${at()} page console ${m.type()}: ${m.text()}\n`));
      page.on('pageerror', (e) => process.stderr.write(`${at()} page error: ${e.stack ?? e.message}\n`));
      page.on('websocket', (ws) => {
        process.stderr.write(`${at()} page websocket opened\n`);
        ws.on('socketerror', (e) => process.stderr.write(`${at()} page websocket error: ${e}\n`));
        ws.on('close', () => process.stderr.write(`${at()} page websocket closed\n`));
      });
    }
    await use(page);
  },
  sshd: async ({}, use) => {
    const sshd = await startSshd();
    // Shells are durable in the app (tmux on the test host): each test starts without the
    // tmux server and clients earlier tests left to the test user.
    await promisify(execFile)('pkill', ['-u', sshd.user, 'tmux']).catch(() => undefined);
    await use(sshd);
    await sshd.stop();
  },
  hitch: async ({ sshd }, use) => {
    const host = await startWebHostProcess(sshd.clientConfig('testhost') + '\n' + sshd.clientConfig('otherhost'));
    await use(host);
    await host.stop();
  },
});

export { expect } from '@playwright/test';

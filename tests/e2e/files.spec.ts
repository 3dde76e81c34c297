// Files in the browser, over the host's master: a person browses their home on the host,
// makes, renames and deletes a folder, and moves a 100 MB file up (from the browser's file
// picker) and back down (the browser's own download) with the same bytes, all on the one login.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { behindProxy, startProxy } from '../fixtures/tcp-proxy';
import { expect, startWebHostProcess, test } from './fixtures';
import { randomFile, sha256File as sha256 } from '../fixtures/local-files';

const MB = 1024 * 1024;

/** Opens the file panel on testhost at the login directory; returns the panel and that directory. */
async function openFiles(page: Page, url: string): Promise<{ panel: ReturnType<Page['getByRole']>; home: string }> {
  await page.goto(url);
  await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'Files' }).click();
  const panel = page.getByRole('region', { name: 'Files on testhost' });
  const pathBar = panel.getByLabel('Path on testhost');
  await expect(pathBar).toHaveValue(/^\/.+/);
  return { panel, home: await pathBar.inputValue() };
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

test('browse the home directory, create a folder, rename it and delete it after confirming', async ({ page, hitch, sshd }) => {
  const { panel, home } = await openFiles(page, hitch.url);
  expect(home).toBe(`/home/${sshd.user}`);
  const name = `e2e-folder-${randomBytes(4).toString('hex')}`;
  const renamed = `${name}-renamed`;
  try {
    // Hidden files: off by default, shown on request (the fixture's user has a .profile).
    await expect(panel.locator('tr[data-name=".profile"]')).toHaveCount(0);
    await panel.getByLabel('hidden files').check();
    await expect(panel.locator('tr[data-name=".profile"]')).toBeVisible();
    await expect(panel.locator('tr[data-name=".profile"] td.permissions')).toHaveText(/^-[rwx-]{9}$/);

    await panel.getByRole('button', { name: 'New folder' }).click();
    await panel.getByLabel('New folder name').fill(name);
    await panel.getByRole('button', { name: 'Create' }).click();
    const row = panel.locator(`tr[data-name="${name}"]`);
    await expect(row).toHaveAttribute('data-type', 'directory');
    await expect(row.locator('td.permissions')).toHaveText(/^d[rwx-]{9}$/);
    expect(await exists(join(home, name))).toBe(true);

    // "Follow terminal" goes where the active shell is, without typing anything into it.
    await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'New shell' }).click();
    await page.locator('.term-pane.active').click();
    await page.keyboard.type(`cd ${name} && echo "in-$PWD"`);
    await page.keyboard.press('Enter');
    await expect.poll(async () => page.locator('.term-pane.active .xterm-rows').textContent()).toContain(`in-${join(home, name)}`);
    await panel.getByRole('button', { name: 'Follow terminal' }).click();
    await expect(panel.getByLabel('Path on testhost')).toHaveValue(join(home, name));
    await panel.getByRole('button', { name: 'Up one folder' }).click();
    await expect(panel.getByLabel('Path on testhost')).toHaveValue(home);

    // Double click enters it; the path bar follows, and "up" comes back.
    await row.dblclick();
    await expect(panel.getByLabel('Path on testhost')).toHaveValue(join(home, name));
    await expect(panel.getByText('Empty folder.')).toBeVisible();
    await panel.getByRole('button', { name: 'Up one folder' }).click();
    await expect(panel.getByLabel('Path on testhost')).toHaveValue(home);

    await row.click();
    await panel.getByRole('button', { name: `Rename ${name}` }).click();
    await panel.getByLabel(`New name for ${name}`).fill(renamed);
    await panel.getByLabel(`New name for ${name}`).press('Enter');
    await expect(panel.locator(`tr[data-name="${renamed}"]`)).toBeVisible();
    await expect(panel.locator(`tr[data-name="${name}"]`)).toHaveCount(0);
    expect(await exists(join(home, renamed))).toBe(true);
    expect(await exists(join(home, name))).toBe(false);

    // Deleting asks first, naming exactly what goes; cancelling keeps it.
    await panel.getByRole('button', { name: `Delete ${renamed}` }).click();
    const dialog = page.getByRole('alertdialog');
    await expect(dialog).toContainText(`the folder ${join(home, renamed)} and everything in it`);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
    expect(await exists(join(home, renamed))).toBe(true);
    // And from the keyboard: Delete on the row asks the same, Escape keeps it.
    await panel.locator(`tr[data-name="${renamed}"]`).focus();
    await page.keyboard.press('Delete');
    await expect(dialog).toContainText(join(home, renamed));
    await page.keyboard.press('Escape');
    await expect(dialog).toHaveCount(0);
    expect(await exists(join(home, renamed))).toBe(true);
    await panel.getByRole('button', { name: `Delete ${renamed}` }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Delete' }).click();
    await expect(panel.locator(`tr[data-name="${renamed}"]`)).toHaveCount(0);
    expect(await exists(join(home, renamed))).toBe(false);

    // A path typed that is not there says so, and the listing stays where it was.
    await panel.getByLabel('Path on testhost').fill(join(home, 'no-such-folder'));
    await panel.getByLabel('Path on testhost').press('Enter');
    await expect(panel.getByTestId('files-error')).toContainText('no-such-folder');
    await expect(panel.getByLabel('Path on testhost')).toHaveValue(home);
  } finally {
    await rm(join(home, name), { recursive: true, force: true });
    await rm(join(home, renamed), { recursive: true, force: true });
  }
  expect(await sshd.acceptedLogins()).toBe(1);
});

test('a 100 MB file goes up from the file picker and comes back as the browser\'s download, byte for byte', async ({ page, hitch, sshd }) => {
  test.setTimeout(180_000);
  const dir = await mkdtemp(join(tmpdir(), 'hitch-e2e-files-'));
  const name = `big-${randomBytes(4).toString('hex')}.bin`;
  const local = join(dir, name);
  let home = '';
  try {
    await randomFile(local, 100 * MB);
    const sent = await sha256(local);
    const opened = await openFiles(page, hitch.url);
    const panel = opened.panel;
    home = opened.home;

    await panel.getByTestId('upload-input').setInputFiles(local);
    const up = panel.locator(`li.transfer[data-name="${name}"]`).first();
    // The queue shows it with a progress bar from the start, and it ends done, all bytes there.
    await expect(up.getByRole('progressbar', { name: `Upload of ${name}` })).toBeVisible();
    await expect(up).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
    await expect(up.getByTestId('transfer-amount')).toHaveText('100 MiB of 100 MiB');
    await expect(up.getByRole('progressbar')).toHaveJSProperty('value', 1);
    await expect(panel.locator(`tr[data-name="${name}"] td.size`)).toHaveText('100 MiB');
    expect(await sha256(join(home, name))).toBe(sent);

    const downloading = page.waitForEvent('download');
    await panel.locator(`tr[data-name="${name}"]`).click();
    await panel.getByRole('button', { name: `Download ${name}` }).click();
    const download = await downloading;
    expect(download.suggestedFilename()).toBe(name);
    // The link the browser keeps in its download list carries a one-time ticket, not the token.
    expect(download.url()).toMatch(/\/files\/download\?ticket=[A-Za-z0-9_-]{32}$/);
    const saved = join(dir, 'downloaded.bin');
    await download.saveAs(saved);
    expect(await sha256(saved)).toBe(sent);
    const down = panel.locator(`li.transfer[data-state="done"][data-name="${name}"]`);
    await expect(down).toHaveCount(2); // the upload and the download, both done
    await expect(panel.locator(`li.transfer[data-name="${name}"] .direction`)).toHaveText(['↓', '↑']);
    if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/files.png' });
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (home) await rm(join(home, name), { force: true });
  }
  expect(await sshd.acceptedLogins()).toBe(1);
});

test('files dropped from the desktop upload, and a file already there is replaced only after asking', async ({ page, hitch }) => {
  const { panel, home } = await openFiles(page, hitch.url);
  const name = `dropped-${randomBytes(4).toString('hex')}.txt`;
  const drop = async (text: string): Promise<void> => {
    const dataTransfer = await page.evaluateHandle(
      ([fileName, body]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([body], fileName, { type: 'text/plain' }));
        return dt;
      },
      [name, text] as const,
    );
    const list = panel.getByTestId('file-list');
    await list.dispatchEvent('dragover', { dataTransfer });
    await list.dispatchEvent('drop', { dataTransfer });
  };
  try {
    await drop('first version\n');
    await expect(panel.locator(`tr[data-name="${name}"]`)).toBeVisible();
    await expect.poll(() => readFile(join(home, name), 'utf8').catch(() => '')).toBe('first version\n');

    await drop('second version\n');
    const dialog = page.getByRole('alertdialog');
    await expect(dialog).toContainText(`${join(home, name)} exists already on testhost`);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
    expect(await readFile(join(home, name), 'utf8')).toBe('first version\n');

    await drop('third version\n');
    await page.getByRole('alertdialog').getByRole('button', { name: 'Replace' }).click();
    await expect.poll(() => readFile(join(home, name), 'utf8')).toBe('third version\n');
    await expect(panel.locator(`li.transfer[data-name="${name}"][data-state="done"]`)).toHaveCount(2);
  } finally {
    await rm(join(home, name), { force: true });
  }
});

test('an upload cut off by the network says it is reconnecting, then goes on and ends with the same bytes', async ({ page, sshd }) => {
  test.setTimeout(120_000);
  const proxy = await startProxy({ targetPort: sshd.port });
  const hitch = await startWebHostProcess(await behindProxy(sshd, proxy, 'web1'));
  const dir = await mkdtemp(join(tmpdir(), 'hitch-e2e-files-'));
  const name = `cut-${randomBytes(4).toString('hex')}.bin`;
  const local = join(dir, name);
  const home = `/home/${sshd.user}`;
  try {
    await randomFile(local, 24 * MB);
    await page.goto(hitch.url);
    await page.locator('li[data-host="web1"]').getByRole('button', { name: 'Files' }).click();
    const panel = page.getByRole('region', { name: 'Files on web1' });
    await expect(panel.getByLabel('Path on web1')).toHaveValue(home);

    proxy.setDelay(20); // slow enough for the cut to land mid-way
    await panel.getByTestId('upload-input').setInputFiles(local);
    const row = panel.locator(`li.transfer[data-name="${name}"]`);
    await expect(row).toHaveAttribute('data-state', 'running');
    await expect.poll(async () => Number(await row.getByRole('progressbar').evaluate((p) => (p as HTMLProgressElement).value)), { timeout: 60_000 }).toBeGreaterThan(0.1);
    // The network goes: connections reset, and new ones get no answer until it is back.
    proxy.blackhole(true);
    proxy.resetAll();
    await expect(row.getByTestId('transfer-state')).toHaveText('reconnecting…', { timeout: 30_000 });
    await expect(row).toHaveAttribute('data-state', 'waiting');
    proxy.setDelay(0);
    proxy.blackhole(false);
    await expect(row).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
    await expect(row.getByTestId('transfer-state')).toHaveText(/^done · resumed \d+×$/);
    expect(await sha256(join(home, name))).toBe(await sha256(local));
    expect(await sshd.acceptedLogins()).toBe(2); // the first login, and the one after the cut
  } finally {
    proxy.blackhole(false);
    proxy.setDelay(0);
    await hitch.stop();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
    await rm(join(home, name), { force: true });
  }
});

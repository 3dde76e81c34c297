/// <reference lib="dom" />
// Hitch as a launcher: type to filter, Enter to open; drag hosts and tabs to open more
// sessions on the same master; split panes; settings; the master's details; notices.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';

const termText = (page: Page, pane: string): Promise<string | null> => page.locator(`${pane} .xterm-rows`).textContent();

test('type to filter, arrows to choose, Enter opens a shell', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const filter = page.getByLabel('Filter hosts');
  await expect(filter).toBeFocused();
  await page.keyboard.type('other');
  await expect(page.locator('li[data-host]')).toHaveCount(1);
  await expect(page.locator('li[data-host="otherhost"]')).toHaveClass(/highlighted/);
  await page.keyboard.press('Escape');
  await expect(page.locator('li[data-host]')).toHaveCount(2);
  await page.keyboard.press('ArrowDown');
  await expect(page.locator('li[data-host="otherhost"]')).toHaveClass(/highlighted/);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('tab')).toHaveCount(1);
  await expect(page.getByRole('tab').first()).toContainText('otherhost');
  // Used hosts move to the "Recent" group.
  await expect(page.locator('ul[data-group="recent"] li[data-host="otherhost"]')).toBeVisible();
});

test('dragging a host or a tab opens another session on the same master, in a tab or beside', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.dragTo(page.getByTestId('tab-strip'));
  await expect(page.getByRole('tab')).toHaveCount(1);

  await page.getByRole('tab').first().dragTo(page.getByTestId('tab-strip'));
  await expect(page.getByRole('tab')).toHaveCount(2);

  // Drag a tab onto the terminal area's right side: a split pane.
  const tab = page.locator('.tab').first();
  await tab.hover();
  await page.mouse.down();
  const area = (await page.getByTestId('terminal-area').boundingBox())!;
  await page.mouse.move(area.x + area.width * 0.8, area.y + area.height / 2, { steps: 5 });
  await page.getByTestId('split-drop').waitFor();
  await page.mouse.move(area.x + area.width * 0.85, area.y + area.height / 2, { steps: 2 });
  await page.mouse.up();
  await expect(page.getByRole('tab')).toHaveCount(3);
  await expect(page.getByTestId('terminal-area')).toHaveClass(/split/);
  await expect(page.locator('.term-pane.active')).toHaveCount(2); // both panes show a terminal
  await expect(page.locator('.term-pane.pane-1')).toHaveCount(1);

  // Both panes are live terminals on the one connection.
  await page.locator('.term-pane.pane-1').click();
  await page.keyboard.type('echo right-$((40+2))');
  await page.keyboard.press('Enter');
  await expect.poll(() => termText(page, '.term-pane.pane-1')).toContain('right-42');
  expect(await sshd.acceptedLogins()).toBe(1);
  if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/split.png' });

  // The keyboard and button equivalents of dragging.
  await page.getByRole('button', { name: /^Duplicate / }).first().click();
  await expect(page.getByRole('tab')).toHaveCount(4);
  await page.getByRole('button', { name: 'Close the split' }).click();
  await expect(page.getByTestId('terminal-area')).not.toHaveClass(/split/);
});

test('settings are saved, applied and kept across reloads', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  await page.getByRole('button', { name: 'Settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  await dialog.getByLabel('Terminal font size').fill('17');
  await dialog.getByLabel('Theme').selectOption('light');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');

  await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'New shell' }).click();
  await expect.poll(() => page.locator('.term-pane.active .xterm-rows').evaluate((el) => getComputedStyle(el).fontSize)).toBe('17px');

  await page.reload();
  await page.getByRole('button', { name: 'Settings' }).click();
  await expect(page.getByRole('dialog', { name: 'Settings' }).getByLabel('Terminal font size')).toHaveValue('17');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');
});

test('a favourite moves to the top and its master connects by itself, before any shell', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="otherhost"]');
  await expect(host.getByTestId('master-state')).toHaveCount(0); // never connected
  await host.getByRole('button', { name: 'Favourite otherhost', exact: true }).click();
  const favourite = page.locator('ul[data-group="favourites"] li[data-host="otherhost"]');
  await expect(favourite.getByTestId('master-state')).toHaveText('connected');
  await expect(favourite.getByRole('button', { name: /^Favourite otherhost/ })).toHaveAttribute('aria-pressed', 'true');
  await expect(page.getByRole('tab')).toHaveCount(0);
  // Kept across a reload: it is a setting.
  await page.reload();
  await expect(page.locator('ul[data-group="favourites"] li[data-host="otherhost"]')).toBeVisible();
});

test("a master's details are one click away", async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  await host.getByRole('button', { name: 'Details' }).click();
  const details = host.getByTestId('master-details');
  await expect(details).toContainText('Connected since');
  await expect(details).toContainText('publickey');
  await expect(details).toContainText(/SHA256:[A-Za-z0-9+/]{43}/);
  await expect(details).toContainText(/in \d+(\.\d)? (B|KiB|MiB) · out \d+/);
});

test('a dropped master is announced, and so is its return', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'Connect' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  await sshd.kill();
  await expect(page.getByTestId('toast').filter({ hasText: 'Connection dropped' })).toBeVisible();
  await expect(host.getByTestId('master-state')).toHaveText('reconnecting…');
  await sshd.start();
  await expect(page.getByTestId('toast').filter({ hasText: 'Reconnected' })).toBeVisible({ timeout: 20_000 });
  await expect(host.getByTestId('master-state')).toHaveText('connected');
});

test('a tab opened in a new window shows that session with its output', async ({ page, hitch, context }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'New shell' }).click();
  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(page.getByRole('tab')).toHaveCount(2);
  await page.locator('.term-pane.active').click();
  await page.keyboard.type('echo in-second-$((3+4))');
  await page.keyboard.press('Enter');
  await expect.poll(() => termText(page, '.term-pane.active')).toContain('in-second-7');

  const popup = context.waitForEvent('page');
  await page.getByRole('button', { name: /^New window for .* #2$/ }).click();
  const win = await popup;
  // A window of its own: that one session, with its output, and none of the opener's other tabs.
  await expect(win.getByRole('tab')).toHaveCount(1);
  await expect.poll(() => termText(win, '.term-pane.active')).toContain('in-second-7');
  await win.reload();
  await expect(win.getByRole('tab')).toHaveCount(1);
  await expect.poll(() => termText(win, '.term-pane.active')).toContain('in-second-7');
});

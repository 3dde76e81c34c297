// The seed scenario: a job started in one terminal is found in the process tree, under the
// session that started it, and stopped from there; the other terminal never notices.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';

async function typeIn(page: Page, tab: number, command: string): Promise<void> {
  await page.getByRole('tab').nth(tab).click();
  await page.locator('.term-pane.active').click();
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
}

test('top started in one session is shown under it and killed from the tree', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(page.getByRole('tab')).toHaveCount(1);
  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(page.getByRole('tab')).toHaveCount(2);

  await typeIn(page, 0, 'top -d 1');
  const panel = page.getByRole('region', { name: 'Processes on testhost' });
  const firstSession = panel.locator('.group').first();
  const top = firstSession.getByRole('treeitem').filter({ hasText: /top -d 1$/ });
  await expect(top).toBeVisible();
  await expect(panel.locator('.group').nth(1).getByRole('treeitem').filter({ hasText: 'top -d 1' })).toHaveCount(0);
  if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/process-tree.png' });

  await top.click();
  await panel.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(panel.getByTestId('signal-outcomes')).toContainText(/\d+: gone/);
  await expect(top).toHaveCount(0);

  await typeIn(page, 1, 'echo other-$((6*7))');
  await expect.poll(async () => page.locator('.term-pane.active .xterm-rows').textContent()).toContain('other-42');
  expect(await sshd.acceptedLogins()).toBe(1);
});

test('stop job escalates to KILL for a job that ignores TERM', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'New shell' }).click();
  await typeIn(page, 0, `sh -c 'trap "" TERM; exec sleep 611'`);
  const panel = page.getByRole('region', { name: 'Processes on testhost' });
  const job = panel.getByRole('treeitem').filter({ hasText: /sleep 611$/ });
  await expect(job).toBeVisible();
  await job.click();
  await panel.getByLabel('Grace period in seconds').fill('1');
  await panel.getByRole('button', { name: 'Stop job' }).click();
  await expect(panel.getByTestId('signal-outcomes')).toContainText(/\d+: killed/, { timeout: 15_000 });
  await expect(job).toHaveCount(0);
});

test('a command run without a terminal can be kept running when its tab closes, and then shows as detached', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'New shell' }).click(); // keeps the panel on this host
  await host.getByRole('button', { name: 'Run…' }).click();
  await host.getByLabel('Command to run on testhost').fill('sleep 613');
  await host.getByLabel('terminal').uncheck();
  await host.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByRole('tab')).toHaveCount(2);
  const panel = page.getByRole('region', { name: 'Processes on testhost' });
  await expect(panel.getByRole('treeitem').filter({ hasText: /sleep 613$/ })).toBeVisible();
  await page.getByRole('button', { name: /and keep it running$/ }).click();
  await expect(page.getByRole('tab')).toHaveCount(1);
  await expect(panel.locator('.group[data-group="detached"]').getByRole('treeitem').filter({ hasText: /sleep 613$/ })).toBeVisible();
  // And it can still be stopped from there.
  await panel.locator('.group[data-group="detached"]').getByRole('treeitem').filter({ hasText: /sleep 613$/ }).click();
  await panel.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(panel.getByTestId('signal-outcomes')).toContainText(/\d+: gone/);
});

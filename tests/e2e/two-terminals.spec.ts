// The first slice end to end: a user opens the URL the web host printed, sees the hosts of
// their ssh config, opens two shells on one host and finds both on one connection.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures';

async function runInActiveTerminal(page: Page, command: string): Promise<void> {
  const terminal = page.locator('.term-pane.active');
  await terminal.click();
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
}

async function activeTerminalText(page: Page): Promise<string> {
  return (await page.locator('.term-pane.active .xterm-rows').textContent()) ?? '';
}

test('two terminals on one host share one authenticated connection', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  // The token is taken out of the address bar once the page has it.
  await expect(page).toHaveURL(/\/$/);

  const host = page.locator('li[data-host="testhost"]');
  await expect(host).toContainText(`${sshd.user}@127.0.0.1:${sshd.port}`);
  await expect(page.locator('li[data-host="otherhost"]')).toBeVisible();

  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  await expect(page.getByRole('tab')).toHaveCount(1);
  await runInActiveTerminal(page, 'echo "PPID=$PPID"');
  await expect.poll(() => activeTerminalText(page)).toMatch(/PPID=\d+/);
  const first = /PPID=(\d+)/.exec(await activeTerminalText(page))![1];

  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(page.getByRole('tab')).toHaveCount(2);
  await expect(page.getByRole('tab').nth(1)).toHaveAttribute('aria-selected', 'true');
  await runInActiveTerminal(page, 'echo "PPID=$PPID"');
  await expect.poll(() => activeTerminalText(page)).toMatch(/PPID=\d+/);
  const second = /PPID=(\d+)/.exec(await activeTerminalText(page))![1];

  expect(second).toBe(first);
  await expect(host.getByTestId('master-detail')).toContainText('2 sessions on one connection');
  expect(await sshd.acceptedLogins()).toBe(1);
  // `HITCH_SCREENSHOTS=1 npx playwright test` refreshes the README's picture.
  if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/two-terminals.png' });

  // Switching back shows the first terminal with its output intact.
  await page.getByRole('tab').first().click();
  await expect.poll(() => activeTerminalText(page)).toContain(`PPID=${first}`);
});

test('a reloaded page reattaches to its live sessions with their scrollback', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'New shell' }).click();
  await runInActiveTerminal(page, 'echo before-$((20+22))');
  await expect.poll(() => activeTerminalText(page)).toContain('before-42');

  await page.reload();
  await expect(page.getByRole('tab')).toHaveCount(1);
  await expect.poll(() => activeTerminalText(page)).toContain('before-42');
  await runInActiveTerminal(page, 'echo after-$((50+5))');
  await expect.poll(() => activeTerminalText(page)).toContain('after-55');
});

test('a failed connection says why in the UI', async ({ page, hitch, sshd }) => {
  void sshd;
  await page.goto(hitch.url);
  await page.locator('li[data-host="testhost"]').waitFor();
  // Stop the server: the next connection is refused.
  await sshd.stop();
  const host = page.locator('li[data-host="otherhost"]');
  await host.getByRole('button', { name: 'Connect' }).click();
  await expect(host.getByTestId('master-error')).toContainText('Connection refused by 127.0.0.1 port');
  await expect(page.getByTestId('notice')).toContainText('Connection refused');
});

test('the page without its token explains how to get in', async ({ page, hitch }) => {
  const bare = hitch.url.replace(/\?token=.*/, '');
  await page.goto(bare);
  await expect(page.getByRole('alert')).toContainText('Open the full URL that `npm run web` printed');
});

test('finds text in the scrollback, and copies and pastes with Ctrl+Shift', async ({ page, hitch, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.goto(hitch.url);
  await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'New shell' }).click();
  await runInActiveTerminal(page, 'for i in $(seq 1 200); do echo line-$i; done; echo needle-$((6*7))');
  await expect.poll(() => activeTerminalText(page)).toContain('needle-42');
  await page.keyboard.press('Control+Shift+F');
  const find = page.getByLabel('Find in terminal');
  await expect(find).toBeFocused();
  await find.fill('line-17');
  await find.press('Enter');
  // The match is selected: Ctrl+Shift+C copies it, Ctrl+Shift+V types it back.
  await find.press('Escape');
  await page.evaluate(() => navigator.clipboard.writeText(''));
  await page.locator('.term-pane.active textarea').press('Control+Shift+C');
  await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe('line-17');
  await page.keyboard.type('echo pasted-');
  await page.keyboard.press('Control+Shift+V');
  await page.keyboard.press('Enter');
  await expect.poll(() => activeTerminalText(page)).toContain('pasted-line-17');
});

test("another page has tabs of its own, lists this page's sessions, and can open one here", async ({ page, hitch, context }) => {
  await page.goto(hitch.url);
  await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'New shell' }).click();
  await runInActiveTerminal(page, 'echo first-page-$((30+3))');
  await expect.poll(() => activeTerminalText(page)).toContain('first-page-33');

  const other = await context.newPage();
  await other.goto(hitch.url);
  const host = other.locator('li[data-host="testhost"]');
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  await expect(other.getByRole('tab')).toHaveCount(0);
  await host.getByRole('button', { name: 'Details' }).click();
  const elsewhere = host.getByTestId('elsewhere-sessions');
  await expect(elsewhere).toContainText('in another window');
  await elsewhere.getByRole('button', { name: 'Open here' }).click();
  await expect(other.getByRole('tab')).toHaveCount(1);
  await expect.poll(() => activeTerminalText(other)).toContain('first-page-33');
  // Both pages now stream it: what one types, both show.
  await runInActiveTerminal(other, 'echo typed-in-other-$((40+4))');
  await expect.poll(() => activeTerminalText(page)).toContain('typed-in-other-44');
  await expect(page.getByRole('tab')).toHaveCount(1);
});

test('a flood several times the flow-control window is drawn to its last line', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'New shell' }).click();
  // 2.3 MB: the engine holds the shell each time the page is 400k characters behind, and lets it
  // go only as the page acknowledges what xterm.js has parsed. A lost acknowledgement stalls it.
  await runInActiveTerminal(page, 'seq 1 330000; echo flood-end-$((6*7))');
  // A durable shell's terminal is redrawn from tmux once the flood is over (reset, then its
  // history and screen written again): the last line and the marker are read together.
  await expect.poll(() => activeTerminalText(page), { timeout: 60_000 }).toMatch(/330000[^]*flood-end-42/);
});

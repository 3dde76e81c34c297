// Sixty tabs: the strip scrolls instead of squeezing them, the active tab is always in view,
// every tab is reachable with the keyboard and from the list of all tabs.
import { startSshd } from '../fixtures/sshd';
import { expect, startWebHostProcess, test } from './fixtures';

test('sixty tabs stay reachable with the mouse and the keyboard', async ({ page }) => {
  test.setTimeout(120_000);
  // Room for sixty shells on one connection.
  const sshd = await startSshd({ maxSessions: 80 });
  const hitch = await startWebHostProcess(sshd.clientConfig('testhost'));
  try {
    await page.setViewportSize({ width: 1000, height: 700 });
    await page.goto(hitch.url);
    const host = page.locator('li[data-host="testhost"]');
    await host.getByRole('button', { name: 'New shell' }).click();
    await expect(page.getByRole('tab')).toHaveCount(1);
    for (let n = 2; n <= 60; n++) {
      await host.getByRole('button', { name: 'New shell' }).click();
      await expect(page.getByRole('tab')).toHaveCount(n);
    }
    const tabs = page.getByRole('tab');
    // The newest tab is active and scrolled into view; the first has scrolled out.
    await expect(tabs.nth(59)).toHaveAttribute('aria-selected', 'true');
    await expect(tabs.nth(59)).toBeInViewport();
    await expect(tabs.nth(0)).not.toBeInViewport();
    // Tabs keep their size: each label is readable, not squeezed.
    const box = await tabs.nth(30).boundingBox();
    expect(box!.width).toBeGreaterThan(40);

    // Keyboard: Home, arrows and End walk the strip, focus and view following.
    await tabs.nth(59).focus();
    await page.keyboard.press('Home');
    await expect(tabs.nth(0)).toHaveAttribute('aria-selected', 'true');
    await expect(tabs.nth(0)).toBeFocused();
    await expect(tabs.nth(0)).toBeInViewport();
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
    await expect(tabs.nth(3)).toHaveAttribute('aria-selected', 'true');
    await page.keyboard.press('End');
    await expect(tabs.nth(59)).toBeFocused();
    await expect(tabs.nth(59)).toBeInViewport();

    // Mouse: the list of all tabs reaches one that is scrolled out of view.
    await page.getByTestId('all-tabs').click();
    const list = page.getByRole('listbox', { name: 'All sessions' });
    await expect(list.getByRole('option')).toHaveCount(60);
    if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/many-tabs.png' });
    await list.getByRole('button').nth(20).click();
    await expect(list).toBeHidden();
    await expect(tabs.nth(20)).toHaveAttribute('aria-selected', 'true');
    await expect(tabs.nth(20)).toBeInViewport();
    // And the strip scrolls to any other tab, which a click then selects.
    await tabs.nth(45).scrollIntoViewIfNeeded();
    await tabs.nth(45).click();
    await expect(tabs.nth(45)).toHaveAttribute('aria-selected', 'true');
  } finally {
    await hitch.stop();
    await sshd.stop();
  }
});

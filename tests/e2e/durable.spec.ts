// A durable shell in the browser: the network to the host goes away, the tab says it is
// reconnecting, and it comes back to the same shell, showing what ran meanwhile; Disconnect
// and Connect take it away and back the same way.
import type { Page } from '@playwright/test';
import { behindProxy, startProxy } from '../fixtures/tcp-proxy';
import { expect, startWebHostProcess, test } from './fixtures';

const terminalText = async (page: Page): Promise<string> => (await page.locator('.term-pane.active .xterm-rows').textContent()) ?? '';

async function run(page: Page, command: string): Promise<void> {
  await page.locator('.term-pane.active').click();
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
}

test('a durable shell goes "reconnecting…" when the network drops and comes back as the same shell, and through Disconnect and Connect', async ({ page, sshd }) => {
  const proxy = await startProxy({ targetPort: sshd.port });
  const hitch = await startWebHostProcess(await behindProxy(sshd, proxy, 'web1'));
  try {
    await page.goto(hitch.url);
    await page.locator('li[data-host="web1"]').getByRole('button', { name: 'New shell' }).click();
    const tab = page.getByRole('tab').first();
    await expect(page.getByTestId('durability')).toHaveAttribute('title', 'Durable shell (tmux on the host)');
    await run(page, 'echo pid-before=$$');
    await expect.poll(() => terminalText(page)).toMatch(/pid-before=\d+/);
    const pid = /pid-before=(\d+)/.exec(await terminalText(page))![1];
    await run(page, '(sleep 2; echo while-away-$((40+2))) &');

    // The network goes: connections reset, and new ones get no answer for a while.
    proxy.blackhole(true);
    proxy.resetAll();
    await expect(tab).toContainText('reconnecting…');
    await new Promise((r) => setTimeout(r, 3_000));
    proxy.blackhole(false);

    await expect(tab).not.toContainText('reconnecting…', { timeout: 30_000 });
    await expect.poll(() => terminalText(page)).toContain('while-away-42');
    await run(page, 'echo pid-after=$$');
    await expect.poll(() => terminalText(page)).toContain(`pid-after=${pid}`);

    // Disconnect leaves it running on the host, and the tab says so; Connect rejoins it.
    const host = page.locator('li[data-host="web1"]');
    await host.getByRole('button', { name: 'Disconnect' }).click();
    await expect(tab).toContainText('disconnected: still running on the host, Connect rejoins it');
    await host.getByRole('button', { name: 'Connect' }).click();
    // Typed while it comes back: the keys reach the shell once it is there.
    await run(page, 'echo pid-rejoined=$$');
    await expect(tab).not.toContainText(/disconnected|reconnecting/, { timeout: 15_000 });
    await expect.poll(() => terminalText(page)).toContain(`pid-rejoined=${pid}`);
  } finally {
    await hitch.stop();
    await proxy.close();
  }
});

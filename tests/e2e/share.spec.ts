// Plain ssh, git and rsync can ride Hitch's masters: the app shows the ssh_config lines, and
// changes the user's config only after showing the change and an explicit click.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { expect, test } from './fixtures';

test('shows the ssh config lines, then adds the Include only when asked; plain ssh then rides the master', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'Connect' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  const before = await readFile(hitch.configPath, 'utf8');

  await page.getByRole('button', { name: 'Use from ssh' }).click();
  const dialog = page.getByRole('dialog', { name: /Use Hitch's masters/ });
  await expect(dialog.getByTestId('ssh-snippet')).toContainText('Host testhost');
  await expect(dialog.getByTestId('ssh-snippet')).toContainText('ControlPath');
  await expect(dialog.getByTestId('include-preview')).toContainText('Include');
  expect(await readFile(hitch.configPath, 'utf8')).toBe(before); // shown, not changed

  await dialog.getByRole('button', { name: /Add the Include line/ }).click();
  await expect(page.getByTestId('info')).toContainText('Added "Include');
  const after = await readFile(hitch.configPath, 'utf8');
  expect(after).toMatch(/^Include /);
  expect(after).toContain(before);

  // A stock client with that config: no second login on the server.
  const out = execFileSync('ssh', ['-F', hitch.configPath, '-o', 'BatchMode=yes', 'testhost', 'echo via-$((20+1))']).toString();
  expect(out.trim()).toBe('via-21');
  expect(await sshd.acceptedLogins()).toBe(1);
});

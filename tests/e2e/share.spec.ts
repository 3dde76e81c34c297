// Plain ssh, git and rsync can ride Hitch's masters: the app shows the ssh_config lines, and
// changes the user's config only after showing the change and an explicit click.
import { execFileSync, spawn } from 'node:child_process';
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

test('sessions stock clients run through the master are listed under the host, not opened as tabs', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="testhost"]');
  await host.getByRole('button', { name: 'Connect' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  await page.getByRole('button', { name: 'Use from ssh' }).click();
  const dialog = page.getByRole('dialog', { name: /Use Hitch's masters/ });
  await dialog.getByRole('button', { name: /Add the Include line/ }).click();
  await expect(page.getByTestId('info')).toContainText('Added "Include');
  await dialog.getByRole('button', { name: 'Close' }).click();

  const ssh = (command: string): string => execFileSync('ssh', ['-F', hitch.configPath, '-o', 'BatchMode=yes', 'testhost', command]).toString();
  for (let i = 0; i < 12; i++) expect(ssh(`echo run-${i}`).trim()).toBe(`run-${i}`);
  const long = spawn('ssh', ['-F', hitch.configPath, '-o', 'BatchMode=yes', 'testhost', 'sleep 60'], { stdio: 'ignore' });
  try {
    await host.getByRole('button', { name: 'Details' }).click();
    const listed = host.getByTestId('external-sessions');
    await expect(listed).toContainText('testhost: sleep 60 · running');
    // The last five that ended, newest first; none of them, nor the running one, is a tab.
    await expect(listed.locator('.external.ended')).toHaveCount(5);
    await expect(listed.locator('.external.ended').first()).toContainText('testhost: echo run-11 · exit 0');
    await expect(page.getByRole('tab')).toHaveCount(0);
    // Asked for, the running one opens as a tab.
    await listed.getByRole('button', { name: 'Show as tab' }).click();
    await expect(page.getByRole('tab')).toHaveCount(1);
    await expect(page.getByRole('tab').first()).toContainText('sleep 60 #1 · external');
  } finally {
    long.kill();
  }
});

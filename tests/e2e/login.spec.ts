// Logging in when a person is needed: the engine's questions appear as a dialog, and the
// answers go back to the engine, never kept by the page.
import { test as base, expect } from '@playwright/test';
import { startSshd, TEST_PASSWORD, type Sshd } from '../fixtures/sshd';
import { startWebHostProcess, type WebHostProcess } from './fixtures';

const test = base.extend<{ sshd: Sshd; hitch: WebHostProcess }>({
  sshd: async ({}, use) => {
    // Password logins allowed; the key the fixture would offer is not used by these hosts.
    const sshd = await startSshd({ extraConfig: ['PasswordAuthentication yes'] });
    await use(sshd);
    await sshd.stop();
  },
  hitch: async ({ sshd }, use) => {
    const config = [
      sshd.clientConfig('pwhost', ['PubkeyAuthentication no']),
      sshd.clientConfig('newhost').replace(sshd.knownHosts, '/dev/null'),
    ].join('\n');
    const host = await startWebHostProcess(config);
    await use(host);
    await host.stop();
  },
});

test('a password prompt appears as a dialog, and the right password opens the shell', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="pwhost"]');
  await host.getByRole('button', { name: 'New shell' }).click();

  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText(`Password for ${sshd.user}@127.0.0.1`);
  await dialog.getByLabel('Password').fill('not the password');
  await dialog.getByRole('button', { name: 'Log in' }).click();
  await expect(dialog).toContainText('Permission denied, please try again.');
  await expect(dialog.getByLabel('Password')).toHaveValue(''); // the page keeps no secret
  await dialog.getByLabel('Password').fill(TEST_PASSWORD);
  if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/password-prompt.png' });
  await dialog.getByRole('button', { name: 'Log in' }).click();

  await expect(dialog).toHaveCount(0);
  await expect(host.getByTestId('master-state')).toHaveText('connected');
  await expect(host.getByTestId('master-detail')).toContainText('password');
  await page.locator('.term-pane.active').click();
  await page.keyboard.type('echo logged-in-$((3*3))');
  await page.keyboard.press('Enter');
  await expect.poll(async () => page.locator('.term-pane.active .xterm-rows').textContent()).toContain('logged-in-9');

  // A second shell rides the same connection: no second dialog, no second login.
  await host.getByRole('button', { name: 'New shell' }).click();
  await expect(page.getByRole('tab')).toHaveCount(2);
  await expect(dialog).toHaveCount(0);
  expect(await sshd.acceptedLogins()).toBe(1);
});

test('cancelling the password dialog says so and connects nothing', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="pwhost"]');
  await host.getByRole('button', { name: 'Connect' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('notice')).toContainText('Login to pwhost cancelled');
  await expect(host.getByTestId('master-state')).toHaveText('failed');
});

test('an unknown host key is shown with its fingerprint and can be accepted', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  const host = page.locator('li[data-host="newhost"]');
  await host.getByRole('button', { name: 'Connect' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('Unknown host key for 127.0.0.1');
  await expect(dialog).toContainText(/ssh-ed25519 key fingerprint is SHA256:[A-Za-z0-9+/]{43}/);
  await dialog.getByRole('button', { name: 'Accept and remember' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');
});

test('a host added in the app is listed and usable', async ({ page, hitch, sshd }) => {
  await page.goto(hitch.url);
  await page.getByRole('button', { name: 'Add host' }).click();
  const form = page.getByRole('form', { name: 'Add host' });
  await form.getByLabel('Alias').fill('added');
  await form.getByLabel('Host name').fill('127.0.0.1');
  await form.getByLabel('Port').fill('not-a-port');
  await form.getByRole('button', { name: 'Save host' }).click();
  await expect(page.getByTestId('notice')).toContainText('port');

  await form.getByLabel('Port').fill(String(sshd.port));
  await form.getByLabel('User').fill(sshd.user);
  await form.getByLabel('Identity file').fill(sshd.clientKey);
  await form.getByRole('button', { name: 'Save host' }).click();
  const host = page.locator('li[data-host="added"]');
  await expect(host).toContainText('added in Hitch');
  await host.getByRole('button', { name: 'Connect' }).click();
  // Hitch has never seen this server's key for this name: it asks.
  await page.getByRole('dialog').getByRole('button', { name: 'Accept once' }).click();
  await expect(host.getByTestId('master-state')).toHaveText('connected');

  // Edit it: what was entered comes back, and a change is saved.
  await host.getByRole('button', { name: 'Edit' }).click();
  const edit = page.getByRole('form', { name: 'Edit added' });
  await expect(edit.getByLabel('Port')).toHaveValue(String(sshd.port));
  await expect(edit.getByLabel('Identity file')).toHaveValue(sshd.clientKey);
  await edit.getByLabel('Host name').fill('localhost');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await expect(host).toContainText(`${sshd.user}@localhost:${sshd.port}`);
});

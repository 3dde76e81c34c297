// Port forwards in the app: added from the master's details with the form, shown active with
// their connections and bytes once they carry traffic, a taken port shown beside the form,
// and cancelled from the list.
import { createServer as createHttpServer, get } from 'node:http';
import { createServer } from 'node:net';
import { expect, test } from './fixtures';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

test('a local forward added in the UI is active, carries a request, and is cancelled', async ({ page, hitch, sshd }) => {
  const http = createHttpServer((req, res) => res.end(`through the UI ${req.url}`));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const httpPort = (http.address() as { port: number }).port;
  try {
    await page.goto(hitch.url);
    const host = page.locator('li[data-host="testhost"]');
    await host.getByRole('button', { name: 'Connect' }).click();
    await host.getByRole('button', { name: 'Details' }).click();
    const panel = host.getByTestId('forwards');
    await expect(panel).toContainText('No forwards.');

    const port = await freePort();
    const form = panel.getByRole('form', { name: 'Add a port forward' });
    await form.getByLabel('Kind').selectOption('local');
    await form.getByLabel('Port').fill(String(port));
    await form.getByLabel('Target').fill(`127.0.0.1:${httpPort}`);
    await form.getByRole('button', { name: 'Add forward' }).click();
    const row = panel.getByTestId('forward-row');
    await expect(row).toHaveAttribute('data-state', 'active');
    await expect(row).toContainText(`localhost:${port}`);
    await expect(row).toContainText(`127.0.0.1:${httpPort}`);

    const body = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/e2e', agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(body).toBe('through the UI /e2e');
    await expect(row).toContainText('1 total');
    if (process.env.HITCH_SCREENSHOTS) await host.screenshot({ path: 'docs/screenshots/forwards.png' });

    // The same port for another target: the error shows beside the form, nothing is added.
    await form.getByLabel('Port').fill(String(port));
    await form.getByLabel('Target').fill(`127.0.0.1:${sshd.port}`);
    await form.getByRole('button', { name: 'Add forward' }).click();
    await expect(form.getByRole('alert')).toContainText(`127.0.0.1 port ${port}: the port is in use already`);
    await expect(panel.getByTestId('forward-row')).toHaveCount(1);

    await row.getByRole('button', { name: /^Cancel forward/ }).click();
    await expect(panel.getByTestId('forward-row')).toHaveCount(0);
    expect(await sshd.acceptedLogins()).toBe(1);
  } finally {
    http.close();
  }
});

// A person measures what multiplexing saves on their host: a run with progress, a chart and
// a table, the reason for any method that cannot run, and the history exported.
import { readFile } from 'node:fs/promises';
import { expect, test } from './fixtures';

test('benchmarks a host, shows the results and exports the history', async ({ page, hitch }) => {
  await page.goto(hitch.url);
  await page.locator('li[data-host="testhost"]').getByRole('button', { name: 'Benchmark' }).click();
  const dialog = page.getByRole('dialog', { name: 'Benchmark testhost' });
  await expect(dialog).toContainText('No runs yet');
  await dialog.getByLabel('Rounds').fill('2');
  await dialog.getByRole('button', { name: 'Run' }).click();
  const table = dialog.getByTestId('bench-table');
  await expect(table).toBeVisible({ timeout: 30_000 });
  for (const method of ['fresh-ssh2', 'hitch-channel', 'hitch-spare', 'openssh-fresh', 'openssh-mux']) {
    await expect(table.locator(`tr[data-method="${method}"]`)).toHaveCount(1);
  }
  await expect(table.locator('tr[data-method="hitch-channel"]')).toContainText('faster');
  // Every method either has a row or says why it was skipped.
  const rows = await table.locator('tbody tr').count();
  const skipped = await dialog.getByTestId('bench-skipped').count();
  expect(rows + skipped).toBe(6);
  if (process.env.HITCH_SCREENSHOTS) await page.screenshot({ path: 'docs/screenshots/benchmark.png' });

  const download = page.waitForEvent('download');
  await dialog.getByRole('button', { name: 'Export CSV' }).click();
  const csv = await readFile(await (await download).path(), 'utf8');
  expect(csv.split('\r\n')[0]).toBe('date,host,method,n,median_ms,p95_ms,min_ms,max_ms,ratio');
  expect(csv).toMatch(/,testhost,hitch-spare,2,/);
});

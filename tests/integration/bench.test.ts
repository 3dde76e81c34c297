// One quick run of every benchmark method against the test server: the report is complete
// and well-formed, and a method that cannot run says why instead of failing the run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BENCH_METHODS } from '../../main/engine/bench/bench';
import { startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';

describe('benchmark', () => {
  let sshd: Sshd;
  let t: TestEngine;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await testEngine(sshd.clientConfig('bench'));
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('measures every method side by side, or says why one cannot run', async () => {
    const report = await t.engine.bench('bench', 2);
    const measured = report.results.map((r) => r.method);
    const skipped = report.skipped.map((s) => s.method);
    expect([...measured, ...skipped].sort()).toEqual([...BENCH_METHODS].sort());
    // Every method runs here, stock ssh through Hitch's control socket too.
    expect(measured).toEqual(expect.arrayContaining(['fresh-ssh2', 'hitch-channel', 'hitch-spare', 'openssh-fresh', 'openssh-mux', 'openssh-via-hitch']));
    for (const r of report.results) {
      expect(r.n).toBe(2);
      expect(r.min_ms).toBeGreaterThan(0);
      expect(r.min_ms).toBeLessThanOrEqual(r.median_ms);
      expect(r.median_ms).toBeLessThanOrEqual(r.p95_ms);
      expect(r.p95_ms).toBeLessThanOrEqual(r.max_ms);
    }
    expect(report.results.find((r) => r.method === 'fresh-ssh2')?.ratio).toBe(1);
    for (const s of report.skipped) expect(s.reason.length).toBeGreaterThan(10);
    // Each fresh method logs in per round; the channel methods ride the one master login.
    const progress = t.events.filter((e) => e.event === 'bench.progress');
    expect(progress.at(-1)?.payload).toMatchObject({ hostId: 'bench', done: measured.length * 2, total: measured.length * 2 });
  });

  it('keeps reports in the history and exports them', async () => {
    const { length } = await t.engine.benchReports('bench');
    expect(length).toBeGreaterThanOrEqual(1);
    const csv = await t.engine.exportBench('bench', 'csv');
    expect(csv.text.split('\r\n')[0]).toBe('date,host,method,n,median_ms,p95_ms,min_ms,max_ms,ratio');
    expect(csv.text).toMatch(/,bench,hitch-channel,2,/);
    const json = JSON.parse((await t.engine.exportBench('bench', 'json')).text) as unknown[];
    expect(json).toHaveLength(length);
  });

  it('can be cancelled', async () => {
    const run = t.engine.bench('bench', 50);
    // The first round includes fresh logins: on a loaded machine it can take well over a second.
    await expect
      .poll(() => t.events.some((e) => e.event === 'bench.progress' && e.payload.done > 0 && e.payload.total === 50 * BENCH_METHODS.length), { timeout: 15_000 })
      .toBe(true);
    t.engine.cancelBench('bench');
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
  });
});

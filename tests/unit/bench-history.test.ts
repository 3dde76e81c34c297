// Keeping benchmark reports: a save that fails is reported to the caller and in the log, and
// does not stop later saves; the report is written by the next save that works.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../preload/api';
import { BenchHistory } from '../../main/engine/bench/bench-history';
import type { Logger } from '../../main/engine/log';

const tmp = mkdtempSync(join(tmpdir(), 'hitch-bench-history-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let cases = 0;
function fresh(): { history: BenchHistory; dir: string; file: string; errors: Record<string, unknown>[] } {
  const dir = join(tmp, `case-${++cases}`);
  const file = join(dir, 'bench-history.json');
  const errors: Record<string, unknown>[] = [];
  const log: Logger = { debug() {}, info() {}, warn() {}, error: (msg, fields) => errors.push({ msg, ...fields }) };
  return { history: new BenchHistory(file, log), dir, file, errors };
}

function report(hostId: string, at: number): BenchReport {
  return {
    hostId,
    at,
    rounds: 5,
    results: [{ method: 'hitch-channel', n: 5, median_ms: 3, p95_ms: 4, min_ms: 2, max_ms: 5, ratio: null }],
    skipped: [],
  };
}

function savedTimes(file: string): number[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { reports: BenchReport[] }).reports.map((r) => r.at);
}

describe('saving benchmark history', () => {
  it('reports a failed save to the caller and in the log', async () => {
    const { history, dir, file, errors } = fresh();
    await history.add(report('web', 1));
    // Tests run as root, so no permission stops a write: a file where the data directory
    // should be does.
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'not a directory');
    await expect(history.add(report('web', 2))).rejects.toMatchObject({
      code: 'internal',
      message: expect.stringContaining(`Could not save benchmark history to ${file}`),
    });
    expect(errors).toEqual([expect.objectContaining({ msg: 'benchmark history not saved', file })]);
  });

  it('saves again once the cause of a failed save is gone', async () => {
    const { history, dir, file } = fresh();
    await history.add(report('web', 1));
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'not a directory');
    await expect(history.add(report('web', 2))).rejects.toThrow();
    rmSync(dir);
    await expect(history.add(report('web', 3))).resolves.toBeUndefined();
    // The report whose save failed is kept, and written by the next save.
    expect(savedTimes(file)).toEqual([1, 2, 3]);
    expect((await history.of('web')).map((r) => r.at)).toEqual([1, 2, 3]);
  });

  it('keeps every report added at once, each save after the one before', async () => {
    const { history, file } = fresh();
    await Promise.all([1, 2, 3, 4, 5, 6].map((at) => history.add(report(at % 2 ? 'web' : 'db', at))));
    expect(savedTimes(file)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await history.of('db')).map((r) => r.at)).toEqual([2, 4, 6]);
  });
});

// Benchmark reports per host, kept in the data directory so a person can see a trend, and
// exported as JSON or CSV.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { BenchReport } from '../../preload/api';
import { moveAside, writeAtomically } from './atomic-file';
import { toCsv } from './bench-stats';
import type { Logger } from './log';

const FORMAT_VERSION = 1;
/** Older reports beyond this many per host are dropped. */
const KEEP_PER_HOST = 200;

const reportSchema = z.object({
  hostId: z.string(),
  at: z.number(),
  rounds: z.number(),
  results: z.array(
    z.object({
      method: z.enum(['fresh-ssh2', 'hitch-channel', 'hitch-spare', 'openssh-fresh', 'openssh-mux', 'openssh-via-hitch']),
      n: z.number(),
      median_ms: z.number(),
      p95_ms: z.number(),
      min_ms: z.number(),
      max_ms: z.number(),
      ratio: z.number().nullable(),
    }),
  ),
  skipped: z.array(z.object({ method: z.string(), reason: z.string() })),
});
const documentSchema = z.object({ version: z.literal(FORMAT_VERSION), reports: z.array(reportSchema) });

export class BenchHistory {
  private reports: BenchReport[] | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  private async load(): Promise<BenchReport[]> {
    if (this.reports) return this.reports;
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    if (text === null) return (this.reports = []);
    let parsed: z.infer<typeof documentSchema> | null = null;
    try {
      parsed = documentSchema.parse(JSON.parse(text));
    } catch {
      const backup = await moveAside(this.file);
      this.log.warn('benchmark history unreadable, kept aside', { backup });
    }
    return (this.reports = (parsed?.reports as BenchReport[] | undefined) ?? []);
  }

  async add(report: BenchReport): Promise<void> {
    const reports = await this.load();
    reports.push(report);
    const mine = reports.filter((r) => r.hostId === report.hostId);
    if (mine.length > KEEP_PER_HOST) reports.splice(reports.indexOf(mine[0]!), 1);
    const text = JSON.stringify({ version: FORMAT_VERSION, reports }, null, 1);
    this.writing = this.writing.then(() => writeAtomically(this.file, text));
    await this.writing;
  }

  async of(hostId: string): Promise<BenchReport[]> {
    return (await this.load()).filter((r) => r.hostId === hostId);
  }

  async export(hostId: string, format: 'json' | 'csv'): Promise<{ filename: string; mime: string; text: string }> {
    const reports = await this.of(hostId);
    const base = `hitch-bench-${hostId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
    if (format === 'json') return { filename: `${base}.json`, mime: 'application/json', text: JSON.stringify(reports, null, 2) + '\n' };
    const rows: (string | number | null)[][] = [['date', 'host', 'method', 'n', 'median_ms', 'p95_ms', 'min_ms', 'max_ms', 'ratio']];
    for (const r of reports) {
      for (const x of r.results) rows.push([new Date(r.at).toISOString(), r.hostId, x.method, x.n, x.median_ms, x.p95_ms, x.min_ms, x.max_ms, x.ratio]);
    }
    return { filename: `${base}.csv`, mime: 'text/csv', text: toCsv(rows) };
  }
}

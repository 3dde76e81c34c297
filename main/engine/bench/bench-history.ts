// Benchmark reports per host, kept in the data directory so a person can see a trend, and
// exported as JSON or CSV.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { benchReportSchema, type BenchReport } from '../../../preload/api';
import { moveAside, saveFile, SerialQueue } from '../atomic-file';
import { toCsv } from './bench-stats';
import type { Logger } from '../log';

const FORMAT_VERSION = 1;
/** Older reports beyond this many per host are dropped. */
const KEEP_PER_HOST = 200;

const documentSchema = z.object({ version: z.literal(FORMAT_VERSION), reports: z.array(benchReportSchema) });

export class BenchHistory {
  private reports: BenchReport[] | null = null;
  private loading: Promise<BenchReport[]> | null = null;
  private readonly saves = new SerialQueue();

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** Reads the file once; concurrent callers share the one read, and a failed read is tried again next time. */
  private load(): Promise<BenchReport[]> {
    if (this.reports) return Promise.resolve(this.reports);
    this.loading ??= this.read().finally(() => (this.loading = null));
    return this.loading;
  }

  private async read(): Promise<BenchReport[]> {
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

  /**
   * Keeps a report and saves the file. A save that fails is logged and thrown to the caller;
   * the report stays in the history for this run and the next save writes it again.
   */
  async add(report: BenchReport): Promise<void> {
    const reports = await this.load();
    reports.push(report);
    const mine = reports.filter((r) => r.hostId === report.hostId);
    if (mine.length > KEEP_PER_HOST) reports.splice(reports.indexOf(mine[0]!), 1);
    // The history as it is when this write starts: after a failed save, everything since.
    await this.saves.run(() => saveFile(this.file, JSON.stringify({ version: FORMAT_VERSION, reports }, null, 1), 'benchmark history', this.log));
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

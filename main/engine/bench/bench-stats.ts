// The statistics the benchmark reports, and the order it measures in. Pure functions.

export interface Summary {
  n: number;
  median_ms: number;
  p95_ms: number;
  min_ms: number;
  max_ms: number;
}

/** The q-quantile (0..1) by linear interpolation between closest ranks, as numpy's default. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median_ms: round1(quantile(sorted, 0.5)),
    p95_ms: round1(quantile(sorted, 0.95)),
    min_ms: round1(sorted[0] ?? Number.NaN),
    max_ms: round1(sorted.at(-1) ?? Number.NaN),
  };
}

/**
 * Rounds of every method interleaved, A B C A B C…, so that drift on a shared machine
 * (another job starting, a CPU clocking down) hits every method alike.
 */
export function interleave<M>(methods: readonly M[], rounds: number): M[] {
  const order: M[] = [];
  for (let r = 0; r < rounds; r++) order.push(...methods);
  return order;
}

/** How a method compares with the baseline: its median over the baseline's (0.1 = ten times faster). */
export function ratio(median: number, baselineMedian: number): number | null {
  if (!Number.isFinite(median) || !Number.isFinite(baselineMedian) || baselineMedian <= 0) return null;
  return Math.round((median / baselineMedian) * 1000) / 1000;
}

/** RFC 4180 CSV: fields with a comma, quote or line break are quoted, quotes doubled. */
export function toCsv(rows: readonly (readonly (string | number | null)[])[]): string {
  const field = (v: string | number | null): string => {
    const s = v === null ? '' : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return rows.map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}

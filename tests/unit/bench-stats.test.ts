// The benchmark's arithmetic: what "median", "p95" and "ratio" mean in its reports.
import { describe, expect, it } from 'vitest';
import { interleave, quantile, ratio, summarize, toCsv } from '../../main/engine/bench/bench-stats';

describe('benchmark statistics', () => {
  it('takes the median of odd and even samples', () => {
    expect(summarize([5, 1, 3]).median_ms).toBe(3);
    expect(summarize([4, 1, 3, 2]).median_ms).toBe(2.5);
  });

  it('interpolates p95 between the closest ranks', () => {
    const samples = Array.from({ length: 20 }, (_, i) => i + 1); // 1..20
    // rank (20-1)*0.95 = 18.05: 19 + 0.05*(20-19)
    expect(summarize(samples).p95_ms).toBe(19.1);
    expect(quantile([10], 0.95)).toBe(10);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('reports n, min and max, rounded to 0.1 ms', () => {
    expect(summarize([2.345, 9.99, 4.05])).toEqual({ n: 3, median_ms: 4.1, p95_ms: 9.4, min_ms: 2.3, max_ms: 10 });
  });

  it('interleaves the methods round by round', () => {
    expect(interleave(['a', 'b', 'c'], 2)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(interleave(['a'], 0)).toEqual([]);
  });

  it('states each method against the fresh connection', () => {
    expect(ratio(45, 450)).toBe(0.1);
    expect(ratio(450, 450)).toBe(1);
    expect(ratio(10, 0)).toBeNull();
    expect(ratio(Number.NaN, 10)).toBeNull();
  });

  it('writes CSV that spreadsheets read back', () => {
    expect(toCsv([['a', 'b,c'], ['say "hi"', null], [1.5, 'x\ny']])).toBe('a,"b,c"\r\n"say ""hi""",\r\n1.5,"x\ny"\r\n');
  });
});

import { describe, expect, it } from 'vitest';
import { WakeDetector } from '../../main/engine/wake';

describe('noticing a wake', () => {
  it('reports a tick far later than due, with how long the process was away, and nothing else', () => {
    let now = 1_000_000;
    const woke: number[] = [];
    const detector = new WakeDetector((away) => woke.push(away), () => now, 1_000, 4_000);
    detector.start();
    detector.stop(); // the test drives the ticks itself
    for (let i = 0; i < 5; i++) {
      now += 1_000 + 300; // a busy machine: late, but not asleep
      detector.check();
    }
    expect(woke).toEqual([]);
    now += 120_000; // two minutes of sleep
    detector.check();
    expect(woke).toEqual([120_000]);
    now += 1_000;
    detector.check();
    expect(woke).toHaveLength(1);
  });
});

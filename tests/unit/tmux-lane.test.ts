// TmuxLane: tmux work that could crash tmux (a session created or ended, a client detached)
// never runs beside a control client starting; rejoins (attaches) run side by side.
import { describe, expect, it } from 'vitest';
import { TmuxLane } from '../../main/engine/sessions/tmux-lane';

/** Work that runs until released, recording what ran beside it. */
function gate(log: string[], name: string): { work: () => Promise<string>; release(): void; failWith(err: Error): void } {
  let release!: () => void;
  let fail!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return {
    work: async () => {
      log.push(`start ${name}`);
      try {
        await done;
      } finally {
        log.push(`end ${name}`);
      }
      return name;
    },
    release: () => release(),
    failWith: (err) => fail(err),
  };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe('the tmux lane of a host', () => {
  it('runs rejoins side by side', async () => {
    const lane = new TmuxLane();
    const log: string[] = [];
    const a = gate(log, 'a');
    const b = gate(log, 'b');
    const ra = lane.beside(a.work);
    const rb = lane.beside(b.work);
    await tick();
    expect(log).toEqual(['start a', 'start b']);
    a.release();
    b.release();
    expect(await Promise.all([ra, rb])).toEqual(['a', 'b']);
    expect(lane.idle).toBe(true);
  });

  it('starts exclusive work only once the work before it has ended, and nothing beside it', async () => {
    const lane = new TmuxLane();
    const log: string[] = [];
    const rejoin = gate(log, 'rejoin');
    const start = gate(log, 'new-session');
    const later = gate(log, 'later rejoin');
    const r1 = lane.beside(rejoin.work);
    const r2 = lane.alone(start.work);
    const r3 = lane.beside(later.work); // comes after the exclusive work: waits for it
    await tick();
    expect(log).toEqual(['start rejoin']);
    rejoin.release();
    await r1;
    await tick();
    expect(log).toEqual(['start rejoin', 'end rejoin', 'start new-session']);
    start.release();
    await r2;
    await tick();
    expect(log.slice(-2)).toEqual(['end new-session', 'start later rejoin']);
    later.release();
    await r3;
    expect(lane.idle).toBe(true);
  });

  it('runs exclusive work one at a time, in order', async () => {
    const lane = new TmuxLane();
    const log: string[] = [];
    const kill = gate(log, 'kill');
    const start = gate(log, 'start');
    const r1 = lane.alone(kill.work);
    const r2 = lane.alone(start.work);
    await tick();
    expect(log).toEqual(['start kill']);
    kill.release();
    await r1;
    await tick();
    expect(log).toEqual(['start kill', 'end kill', 'start start']);
    start.release();
    await r2;
  });

  it('goes on after work that failed, or threw before it began', async () => {
    const lane = new TmuxLane();
    const log: string[] = [];
    const failing = gate(log, 'failing');
    const r1 = lane.alone(failing.work);
    const r2 = lane.alone(() => {
      throw new Error('no channel');
    });
    const next = gate(log, 'next');
    const r3 = lane.beside(next.work);
    failing.failWith(new Error('tmux went away'));
    await expect(r1).rejects.toThrow('tmux went away');
    await expect(r2).rejects.toThrow('no channel');
    await tick();
    expect(log).toContain('start next');
    next.release();
    await expect(r3).resolves.toBe('next');
    expect(lane.idle).toBe(true);
  });
});

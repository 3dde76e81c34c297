// The process monitor reads what its remote shell prints; a shell that prints without end
// (hostile, or broken) must not grow the engine's memory without bound. It gives its
// MaxSessions slot to a person's session when asked, but never in the middle of a signal.
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { MasterConnection } from '../../main/engine/masters/master';
import { MAX_SCRIPT_OUTPUT, ProcessMonitor } from '../../main/engine/processes/monitor';

/** A channel that answers the monitor's greeting, then prints what the test says. */
function fakeChannel(greeting: string): { channel: ClientChannel; closed: () => boolean; written: string[] } {
  const ch = new EventEmitter() as EventEmitter & Record<string, unknown>;
  let closed = false;
  const written: string[] = [];
  ch.setEncoding = () => ch;
  ch.stderr = { resume: () => undefined };
  ch.write = (text: string) => {
    written.push(text);
    if (greeting) {
      const g = greeting;
      greeting = '';
      queueMicrotask(() => ch.emit('data', g));
    }
    return true;
  };
  ch.close = () => {
    closed = true;
    queueMicrotask(() => ch.emit('close'));
  };
  return { channel: ch as unknown as ClientChannel, closed: () => closed, written };
}

/** A connection that hands out `channel` and keeps what the monitor registers to give its slot up. */
function connectionWith(channel: ClientChannel): MasterConnection & { giveUp: () => Promise<boolean> } {
  const c = {
    openMonitor: () => Promise.resolve(channel),
    giveUp: () => Promise.resolve(false),
    yieldsSlot: (_: ClientChannel, giveUp: () => Promise<boolean>) => (c.giveUp = giveUp),
  };
  return c as unknown as MasterConnection & { giveUp: () => Promise<boolean> };
}

/** Answers the script the monitor wrote last with `output`. */
function answer(channel: ClientChannel, written: string[], output: string): void {
  const marker = /printf '(.*)'\n$/.exec(written.at(-1)!)![1]!.replace(/\\n/g, '\n');
  channel.emit('data', output + marker);
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('the process monitor', () => {
  it('closes a monitor whose shell floods output, failing the request clearly instead of buffering it', async () => {
    const { channel, closed } = fakeChannel('100 99 1000\n');
    const monitor = await ProcessMonitor.start(connectionWith(channel));
    const snapshot = monitor.snapshot();
    await new Promise((r) => setImmediate(r)); // the request is now waiting for its answer
    const chunk = 'x'.repeat(1 << 20);
    for (let i = 0; i <= MAX_SCRIPT_OUTPUT / chunk.length && !closed(); i++) channel.emit('data', chunk);
    await expect(snapshot).rejects.toThrow(/more than 8388608 bytes for one request/);
    expect(closed()).toBe(true);
    expect(monitor.closed).toBe(true);
  });

  it('gives up on a shell that prints something other than its first line', async () => {
    const { channel, closed } = fakeChannel('Welcome! '.repeat(10_000));
    await expect(ProcessMonitor.start(connectionWith(channel))).rejects.toThrow(/other than its first line/);
    expect(closed()).toBe(true);
  });

  it('gives its slot up after the snapshot under way, and takes no script after that', async () => {
    const { channel, closed, written } = fakeChannel('100 99 1000\n');
    const connection = connectionWith(channel);
    const monitor = await ProcessMonitor.start(connection);
    const snapshot = monitor.snapshot();
    await tick();
    const given = connection.giveUp();
    await tick();
    expect(closed()).toBe(false); // the snapshot is answered first
    expect(monitor.usable).toBe(false);
    await expect(monitor.snapshot()).rejects.toMatchObject({ code: 'max-sessions' });
    expect(await connection.giveUp()).toBe(false); // one slot, given once
    answer(channel, written, '');
    expect((await snapshot).rows).toEqual([]);
    expect(await given).toBe(true);
    expect(closed()).toBe(true);
  });

  it('keeps its slot while a signal waits for its answer', async () => {
    const { channel, closed, written } = fakeChannel('100 99 1000\n');
    const connection = connectionWith(channel);
    const monitor = await ProcessMonitor.start(connection);
    const signalled = monitor.signalAndWait([4242], 'TERM', 1000, true);
    await tick();
    expect(await connection.giveUp()).toBe(false);
    expect(monitor.usable).toBe(true);
    answer(channel, written, '4242 gone\n');
    expect(await signalled).toEqual(new Map([[4242, 'gone']]));
    expect(await connection.giveUp()).toBe(true);
    expect(closed()).toBe(true);
  });

  it('gives its slot up within 2 s when its script is stuck on the host, closing itself', async () => {
    const { channel, closed } = fakeChannel('100 99 1000 0f1e2d3c-boot\n');
    const connection = connectionWith(channel);
    const monitor = await ProcessMonitor.start(connection);
    expect(monitor.machine).toBe('0f1e2d3c-boot');
    const snapshot = monitor.snapshot().catch((err: Error) => err);
    await tick();
    const started = Date.now();
    expect(await connection.giveUp()).toBe(false); // the person's session opens elsewhere
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    expect(closed()).toBe(true);
    expect(monitor.usable).toBe(false);
    expect(await snapshot).toBeInstanceOf(Error);
  });

  it('closes at once for a session that needs its slot while it is still starting', async () => {
    const { channel, closed } = fakeChannel('');
    const connection = connectionWith(channel);
    const starting = ProcessMonitor.start(connection);
    await tick();
    expect(await connection.giveUp()).toBe(true);
    expect(await connection.giveUp()).toBe(false); // one slot, given once
    expect(closed()).toBe(true);
    await expect(starting).rejects.toThrow(/ended before it started/);
  });
});

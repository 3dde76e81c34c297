// The process monitor reads what its remote shell prints; a shell that prints without end
// (hostile, or broken) must not grow the engine's memory without bound.
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { MasterConnection } from '../../main/engine/masters/master';
import { MAX_SCRIPT_OUTPUT, ProcessMonitor } from '../../main/engine/processes/monitor';

/** A channel that answers the monitor's greeting, then prints what the test says. */
function fakeChannel(greeting: string): { channel: ClientChannel; closed: () => boolean } {
  const ch = new EventEmitter() as EventEmitter & Record<string, unknown>;
  let closed = false;
  ch.setEncoding = () => ch;
  ch.stderr = { resume: () => undefined };
  ch.write = () => {
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
  return { channel: ch as unknown as ClientChannel, closed: () => closed };
}

function connectionWith(channel: ClientChannel): MasterConnection {
  return { openMonitor: () => Promise.resolve(channel) } as unknown as MasterConnection;
}

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
});

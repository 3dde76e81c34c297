// Packets written to a connection within one turn of the event loop leave in one system call.
//
// ssh2 writes each SSH packet to its socket as it makes it, and each write is a system call;
// a download asks for its next chunks several at a time, a keystroke comes with a window
// adjust, a flood's acknowledgements with many channels' adjusts. Corked until the current
// tick's work is done, the packets go out together in one writev: nothing waits longer than
// the code already running (a process.nextTick), so no latency is added.
import type { Duplex } from 'node:stream';

export function coalesceWrites(transport: Duplex): void {
  const write = transport.write.bind(transport) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    transport.uncork();
  };
  transport.write = ((...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      transport.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Duplex['write'];
}

// How a session's text output is sent on: the first output after a quiet spell at once (a
// key's echo, a prompt: nothing holds it back), a stream after it in batches.
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MasterConnection } from '../../main/engine/masters/master';
import { Session } from '../../main/engine/sessions/session';

/** The end of this turn of the event loop (setImmediate is not faked). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Only what a session listens to on its channel: its output events. */
function fakeChannel(): ClientChannel {
  return Object.assign(new EventEmitter(), { stderr: new EventEmitter() }) as unknown as ClientChannel;
}

describe('a session sending its output on', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  it('sends output after a quiet spell at once, and batches what follows it within 5 ms', async () => {
    const channel = fakeChannel();
    const session = new Session({ id: 's1', hostId: 'h', masterId: 'm', kind: 'shell', command: null }, channel, {} as MasterConnection);
    const sent: string[] = [];
    session.on('data', (_offset, data) => sent.push(String(data)));

    channel.emit('data', Buffer.from('a'));
    expect(sent).toEqual([]); // never from inside the call that received it
    await turn();
    expect(sent).toEqual(['a']); // the echo: no timer between it and the client

    channel.emit('data', Buffer.from('b'));
    channel.emit('data', Buffer.from('c'));
    expect(sent).toEqual(['a']); // a stream: gathered
    vi.advanceTimersByTime(5);
    expect(sent).toEqual(['a', 'bc']);

    vi.advanceTimersByTime(50); // quiet again
    channel.emit('data', Buffer.from('$ '));
    await turn();
    expect(sent).toEqual(['a', 'bc', '$ ']);
  });
});

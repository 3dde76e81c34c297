// A durable shell going live: output tmux sends before the shell is carried (the prompt, when
// it comes before tmux's answers to the start) is passed on as output once the shell is live,
// after the call that carried it has returned, so whoever opened the shell hears it.
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { MasterConnection } from '../../main/engine/masters/master';
import { DurableShell } from '../../main/engine/sessions/durable-shell';
import { controlCommand } from '../../main/engine/sessions/tmux-control';

/** A carrier channel that takes commands and lets the test speak for tmux. */
function fakeCarrier(): ClientChannel {
  return Object.assign(new EventEmitter(), { stderr: new EventEmitter(), write: () => true, close: () => undefined, pause: () => undefined, resume: () => undefined }) as unknown as ClientChannel;
}

describe('a durable shell going live', () => {
  it('passes on the output that came before tmux had answered its start, after carry returns', async () => {
    const name = 'hitch-0123456789abcdef';
    const start = controlCommand(name, { cols: 80, rows: 24 }, 'new');
    const shell = new DurableShell({ id: 's1', hostId: 'h', masterId: 'm', kind: 'shell', command: null }, name, {} as MasterConnection, { cols: 80, rows: 24 });
    const channel = fakeCarrier();
    const carried = shell.carry(channel, {} as MasterConnection, start);

    // tmux: the prompt first, then an answer for every command of the start (the pane last but one).
    const lines = ['%output %7 hitchtest@host:~$ '];
    for (let i = 0; i < start.replies; i++) {
      lines.push(`%begin 1 ${i} 1`);
      if (i === start.replies - 2) lines.push('%7 4242 4200');
      lines.push(`%end 1 ${i} 1`);
    }
    channel.emit('data', Buffer.from(lines.join('\n') + '\n'));
    await carried;

    // The engine starts listening once carry has returned, as it does.
    const heard: string[] = [];
    shell.on('data', (_offset, data) => heard.push(String(data)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heard.join('')).toBe('hitchtest@host:~$ ');
    expect(shell.rootPid).toBe(4242);
  });
});

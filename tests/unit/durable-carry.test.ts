// A durable shell going live: output tmux sends before the shell is carried (the prompt, when
// it comes before tmux's answers to the start) is passed on as output once the shell is live,
// after the call that carried it has returned, so whoever opened the shell hears it.
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { MasterConnection } from '../../main/engine/masters/master';
import { DurableShell } from '../../main/engine/sessions/durable-shell';
import { controlCommand, START_QUERIES, type ControlStart } from '../../main/engine/sessions/tmux-control';

/** A carrier channel that takes commands (kept in `written`) and lets the test speak for tmux. */
function fakeCarrier(written: string[] = []): ClientChannel {
  return Object.assign(new EventEmitter(), {
    stderr: new EventEmitter(),
    write: (line: string) => written.push(line),
    close: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
  }) as unknown as ClientChannel;
}

/** tmux answering every command of a start: the pane described as `describe`, `keys` its hidden variables; output first. */
function answerStart(channel: ClientChannel, start: ControlStart, describe: string, keys: string[] = [], output: string[] = []): void {
  const lines = [...output];
  const queriesAt = start.replies - start.queries;
  for (let i = 0; i < start.replies; i++) {
    lines.push(`%begin 1 ${i} 1`);
    if (i === queriesAt + START_QUERIES.describe) lines.push(describe);
    if (i === queriesAt + START_QUERIES.keys) lines.push(...keys);
    lines.push(`%end 1 ${i} 1`);
  }
  channel.emit('data', Buffer.from(lines.join('\n') + '\n'));
}

const INFO = { id: 's1', hostId: 'h', masterId: 'm', kind: 'shell', command: null } as const;
const MARK = '0123abcd';
const hexOf = (text: string): string => [...Buffer.from(text)].map((b) => b.toString(16).padStart(2, '0')).join(' ');

describe('a durable shell going live', () => {
  it('passes on the output that came before tmux had answered its start, after carry returns', async () => {
    const name = 'hitch-0123456789abcdef';
    const start = controlCommand(name, { cols: 80, rows: 24 }, 'new');
    const shell = new DurableShell(INFO, name, MARK, {} as MasterConnection, { cols: 80, rows: 24 });
    const channel = fakeCarrier();
    const carried = shell.carry(channel, {} as MasterConnection, start);

    // tmux: the prompt first, then an answer for every command of the start (the pane last but one).
    answerStart(channel, start, '%7 4242 4200', [], ['%output %7 hitchtest@host:~$ ']);
    await carried;

    // The engine starts listening once carry has returned, as it does.
    const heard: string[] = [];
    shell.on('data', (_offset, data) => heard.push(String(data)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heard.join('')).toBe('hitchtest@host:~$ ');
    expect(shell.rootPid).toBe(4242);
  });

  it('sends again, once back, the keys tmux had not applied when its carrier went, and only those', async () => {
    const name = 'hitch-0123456789abcdef';
    const shell = new DurableShell(INFO, name, MARK, {} as MasterConnection, { cols: 80, rows: 24 });
    const first: string[] = [];
    const carrier = fakeCarrier(first);
    const fresh = controlCommand(name, { cols: 80, rows: 24 }, 'new');
    const live = shell.carry(carrier, {} as MasterConnection, fresh);
    answerStart(carrier, fresh, '%7 4242 4200');
    await live;

    let abAnswered = false;
    void shell.write('ab').then(() => (abAnswered = true));
    void shell.write('cd');
    void shell.write('ef');
    expect(first.map((line) => /HITCH_KEYS_0123abcd (\d+) ; send-keys -t %7 -H ([0-9a-f ]+)\n$/.exec(line)?.slice(1))).toEqual([
      ['1', hexOf('ab')],
      ['2', hexOf('cd')],
      ['3', hexOf('ef')],
    ]);
    // One line is two commands: its first answer alone does not answer it.
    carrier.emit('data', Buffer.from('%begin 2 1 1\n%end 2 1 1\n'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(abAnswered).toBe(false);
    carrier.emit('data', Buffer.from('%begin 2 2 1\n%end 2 2 1\n')); // "ab" answered
    await new Promise((resolve) => setImmediate(resolve));
    expect(abAnswered).toBe(true);
    // "cd" gets its first answer only, then the carrier goes; a key is typed meanwhile.
    carrier.emit('data', Buffer.from('%begin 2 3 1\n%end 2 3 1\n'));
    carrier.emit('close');
    expect(shell.reconnecting).toBe(true);
    void shell.write('gh');

    // The next carrier hears that tmux applied up to 2: "cd" is not sent again, "ef" is, then "gh".
    const second: string[] = [];
    const next = fakeCarrier(second);
    const rejoin = controlCommand(name, { cols: 80, rows: 24 }, 'attach');
    const back = shell.carry(next, {} as MasterConnection, rejoin);
    answerStart(next, rejoin, '%7 4242 4300', ['HITCH_KEYS_ffffffff=40', 'HITCH_KEYS_0123abcd=2']);
    await back;
    expect(second).toHaveLength(1);
    expect(second[0]).toMatch(new RegExp(`HITCH_KEYS_0123abcd 4 ; send-keys -t %7 -H ${hexOf('efgh')}\\n$`));

    // Keys tmux refuses are not kept to send again: "efgh" (4) is answered, "ij" (5) refused at its second command.
    void shell.write('ij');
    next.emit('data', Buffer.from('%begin 3 1 1\n%end 3 1 1\n%begin 3 2 1\n%end 3 2 1\n'));
    next.emit('data', Buffer.from(`%begin 3 3 1\n%end 3 3 1\n%begin 3 4 1\ncan't find pane: %7\n%error 3 4 1\n`));
    await new Promise((resolve) => setImmediate(resolve));
    next.emit('close');
    const third: string[] = [];
    const last = fakeCarrier(third);
    const again = shell.carry(last, {} as MasterConnection, rejoin);
    answerStart(last, rejoin, '%7 4242 4400', ['HITCH_KEYS_0123abcd=4']);
    await again;
    expect(third).toEqual([]);
  });

  it('numbers its keys on from those tmux has from this engine, when it carries a shell this engine carried before', async () => {
    const name = 'hitch-0123456789abcdef';
    const shell = new DurableShell(INFO, name, MARK, {} as MasterConnection, { cols: 80, rows: 24 });
    const sent: string[] = [];
    const carrier = fakeCarrier(sent);
    const reopen = controlCommand(name, { cols: 80, rows: 24 }, 'attach');
    const live = shell.carry(carrier, {} as MasterConnection, reopen);
    answerStart(carrier, reopen, '%7 4242 4200', ['HITCH_KEYS_0123abcd=57']);
    await live;
    void shell.write('x');
    expect(sent[0]).toMatch(/HITCH_KEYS_0123abcd 58 ; send-keys/);
    // Not answered when the carrier goes, and tmux never got it: sent again.
    carrier.emit('close');
    const again: string[] = [];
    const next = fakeCarrier(again);
    const back = shell.carry(next, {} as MasterConnection, reopen);
    answerStart(next, reopen, '%7 4242 4300', ['HITCH_KEYS_0123abcd=57']);
    await back;
    expect(again).toHaveLength(1);
    expect(again[0]).toMatch(new RegExp(`HITCH_KEYS_0123abcd 59 ; send-keys -t %7 -H ${hexOf('x')}\\n$`));
  });
});

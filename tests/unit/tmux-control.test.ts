// The commands durable shells send tmux, run by a real tmux (the one the test host uses) on a
// socket in a temporary directory of this test's own: the chains parse, every query chained
// into a start is answered in order, and the parser reads what tmux writes.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands, ControlParser, controlCommand, keyPieces, killCommand, parseKeysApplied, parseLeftRunning, redrawnScreen, redrawReplies, screenKey, START_QUERIES, unescapeOutput } from '../../main/engine/sessions/tmux-control';

let dir: string;
const env = (): NodeJS.ProcessEnv => ({ ...process.env, TMUX_TMPDIR: dir, TMUX: '' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hitch-tmux-'));
});
afterAll(async () => {
  await new Promise((r) => spawn('tmux', ['-L', 'hitch', 'kill-server'], { env: env(), stdio: 'ignore' }).on('close', r));
  await rm(dir, { recursive: true, force: true });
});

/** Runs a control client's start; resolves with its `replies` answers and the output seen meanwhile. */
function start(command: string, replies: number, input: string[] = [], until?: RegExp): Promise<{ answers: { ok: boolean; lines: string[] }[]; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { env: env(), stdio: ['pipe', 'pipe', 'pipe'] });
    const answers: { ok: boolean; lines: string[] }[] = [];
    let output = '';
    const parser = new ControlParser({
      output: (_pane, data) => {
        output += data.toString('utf8');
        if (until?.test(output)) child.stdin.end();
      },
      reply: (ok, lines) => {
        answers.push({ ok, lines });
        if (answers.length !== replies) return;
        for (const line of input) child.stdin.write(line + '\n');
        // Detached, not killed: the shell stays for the next client.
        if (!until) child.stdin.end();
      },
      exit: () => undefined,
    });
    child.stdout.on('data', (chunk: Buffer) => parser.push(chunk));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => (answers.length >= replies ? resolve({ answers, output }) : reject(new Error(`tmux exited ${code}: ${stderr} ${answers.map((a) => a.lines.join(' ')).join(' ')}`))));
  });
}

describe('tmux control commands', () => {
  const name = 'hitch-00112233445566ff';
  const mark = '0a1b2c3d';

  it('starts a shell with its queries answered in the same round, then rejoins it with the screen as it was', async () => {
    const fresh = controlCommand(name, { cols: 100, rows: 30 }, 'new');
    const first = await start(fresh.command, fresh.replies);
    expect(first.answers).toHaveLength(fresh.replies);
    expect(first.answers.every((a) => a.ok)).toBe(true);
    const started = first.answers.slice(fresh.replies - fresh.queries);
    const [pane, pid, clientPid] = started[START_QUERIES.describe]!.lines[0]!.split(' ');
    expect(pane).toMatch(/^%\d+$/);
    expect(Number(pid)).toBeGreaterThan(1);
    expect(Number(clientPid)).toBeGreaterThan(1);
    expect(parseKeysApplied(started[START_QUERIES.keys]!.lines, mark)).toBe(0); // no keys sent yet

    // Keys typed through the pane's id, numbered, then a rejoin: the capture holds the shell's
    // answer, and the keys query the number of the last keys tmux applied.
    const attach = controlCommand(name, { cols: 100, rows: 30 }, 'attach');
    const [piece] = keyPieces(Buffer.from('echo marker-$((6*7))\r'));
    const typed = await start(attach.command, attach.replies, [commands.sendKeys(name, pane!, mark, 7, piece!)], /marker-42/);
    expect(typed.output).toContain('marker-42');
    const again = controlCommand(name, { cols: 90, rows: 20 }, 'attach');
    expect(again.rejoin).toBe(true);
    const rejoined = await start(again.command, again.replies);
    const queries = rejoined.answers.slice(again.replies - again.queries);
    expect(queries[START_QUERIES.describe]!.lines[0]).toMatch(new RegExp(`^${pane} ${pid} \\d+$`));
    expect(parseKeysApplied(queries[START_QUERIES.keys]!.lines, mark)).toBe(7);
    expect(parseKeysApplied(queries[START_QUERIES.keys]!.lines, 'ffffffff')).toBe(0); // another engine's numbering is its own
    expect(queries[START_QUERIES.capture]!.lines.join('\n')).toContain('marker-42');
    expect(queries[START_QUERIES.capture]!.lines.length).toBeGreaterThanOrEqual(20); // the screen at its new size
    expect(queries[START_QUERIES.cursor]!.lines[0]).toMatch(/^(\d+ ){17}\d+$/);
  });

  it('holds a pane\'s output back from a client, then resumes it with its screen and cursor taken at that instant', async () => {
    const attach = controlCommand(name, { cols: 100, rows: 30 }, 'attach');
    const first = await start(attach.command, attach.replies);
    const pane = first.answers[attach.replies - attach.queries + START_QUERIES.describe]!.lines[0]!.split(' ')[0]!;
    const redraw = commands.redraw(name, pane, 5, true);
    const run = await start(attach.command, attach.replies, [commands.pauseOutput(pane), redraw, commands.redraw(name, pane, 0, false)]);
    const answers = run.answers.slice(attach.replies);
    expect(answers).toHaveLength(1 + redrawReplies(5, true) + redrawReplies(0, false));
    expect(answers.every((a) => a.ok)).toBe(true);
    const [, , capture, normal, cursor, screen, screenCursor] = answers;
    expect(capture!.lines.length).toBeGreaterThanOrEqual(30); // the screen, after up to 5 lines of history
    expect(normal!.lines.join('')).toBe(''); // no alternate screen: nothing kept aside
    expect(screen!.lines.length).toBe(30); // the screen alone
    expect(cursor!.lines[0]).toMatch(/^(\d+ ){17}\d+$/);
    expect(screenCursor!.lines).toEqual(cursor!.lines);
    expect(() => commands.pauseOutput('%1; kill-server')).toThrow(/not a tmux pane id/);
    expect(() => commands.redraw(name, '%1', -1, false)).toThrow(/not a history length/);
  });

  it('redraws a pane with the modes its program set: the alternate screen, cursor keys, mouse, scroll region, a hidden cursor', async () => {
    const probe = 'hitch-00112233445566aa';
    try {
      const fresh = controlCommand(probe, { cols: 80, rows: 24 }, 'new');
      const first = await start(fresh.command, fresh.replies);
      const pane = first.answers[fresh.replies - fresh.queries + START_QUERIES.describe]!.lines[0]!.split(' ')[0]!;
      // What vim or less would set: alternate screen, application cursor keys and keypad, SGR
      // mouse reporting, a scroll region, the cursor hidden and moved.
      const modes = '\x1b[?1049h\x1b[?1h\x1b=\x1b[?1002h\x1b[?1006h\x1b[3;20r\x1b[?25l\x1b[5;7Hfull-';
      const printf = `printf '${[...modes].map((c) => (c === '\x1b' ? '\\033' : c)).join('')}''screen'; sleep 5\r`; // the command line shows full-''screen
      const attach = controlCommand(probe, { cols: 80, rows: 24 }, 'attach');
      const typed = await start(attach.command, attach.replies, [...keyPieces(Buffer.from(printf)).map((p, i) => commands.sendKeys(probe, pane, mark, i + 1, p))], /full-screen/);
      expect(typed.output).toContain('full-screen');
      const again = await start(attach.command, attach.replies, [commands.redraw(probe, pane, 100, false), commands.redraw(probe, pane, 0, false)]);
      const [capture, normal, state, screenOnly, screenState] = again.answers.slice(attach.replies);
      // Started over: the normal buffer (the command typed, kept aside by tmux), then the alternate screen.
      const over = redrawnScreen({ lines: capture!.lines, normal: normal!.lines, state: state!.lines[0] }, 'over');
      const alternate = over.indexOf('\x1b[?1049h\x1b[H');
      expect(alternate).toBeGreaterThan(0);
      expect(over.slice(0, alternate)).toContain('printf');
      expect(over.slice(alternate)).toContain('full-screen');
      for (const mode of ['\x1b[3;20r', '\x1b[?1h', '\x1b=', '\x1b[?1002h', '\x1b[?1006h', '\x1b[?25l', '\x1b[?1003l', '\x1b[?6l']) expect(over).toContain(mode);
      expect(over.endsWith('\x1b[5;18H')).toBe(true); // after the 11 characters printed at row 5, column 7
      // A frame: the active screen drawn over the terminal's, in the alternate buffer.
      const frame = redrawnScreen({ lines: screenOnly!.lines, state: screenState!.lines[0] }, 'frame');
      expect(frame.startsWith('\x1b[?1049h\x1b[H\x1b[2J')).toBe(true);
      expect(frame).toContain('full-screen');
      expect(screenOnly!.lines).toHaveLength(24);
    } finally {
      await new Promise((r) => spawn('sh', ['-c', killCommand(probe)], { env: env() }).on('close', r));
    }

    // A plain shell's state puts every mode back to a terminal's defaults; a line that is not one sets nothing.
    const plain = '2 0 24 0 0 0 23 0 0 0 0 1 1 0 0 0 0 0';
    const defaults = '\x1b[1;24r\x1b[?1l\x1b[?7h\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b>\x1b[4l\x1b[?6l';
    expect(redrawnScreen({ lines: ['$ '], state: plain }, 'over')).toBe(`$ \x1b[0m${defaults}\x1b[1;3H`);
    expect(redrawnScreen({ lines: ['$ '], state: 'x; rm -rf ~' }, 'over')).toBe('$ \x1b[0m\x1b[1;1H');
    // History past the budget is left out, oldest first; the screen never is.
    const oneRow = '2 0 1 0 0 0 0 0 0 0 0 1 1 0 0 0 0 0';
    expect(redrawnScreen({ lines: ['old-1', 'old-2', 'new-3', '$ '], state: oneRow }, 'over', 16)).toMatch(/^new-3\r\n\$ \x1b\[0m/);
    expect(screenKey({ lines: ['h', '$ '], state: oneRow })).toBe(`${oneRow}\n$ `);
  });

  it('lists the shells it left, and ends one', async () => {
    const listed = await new Promise<string>((resolve) => {
      let out = '';
      const child = spawn('sh', ['-c', `tmux -L hitch list-panes -a -F '#{session_name} #{pane_id} #{pane_pid}'`], { env: env() });
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('close', () => resolve(out));
    });
    expect(parseLeftRunning(listed)).toEqual([{ name, pid: expect.any(Number) }]);
    await new Promise((r) => spawn('sh', ['-c', killCommand(name)], { env: env() }).on('close', r));
    const rejoin = controlCommand(name, { cols: 80, rows: 24 }, 'attach');
    await expect(start(rejoin.command, rejoin.replies)).rejects.toThrow(/can't find session|no sessions/); // as the engine reads a shell gone
  });

  it('never writes a name, pane or size it did not make', () => {
    expect(() => controlCommand('web1; rm -rf ~', { cols: 80, rows: 24 }, 'new')).toThrow(/not a durable session name/);
    expect(() => controlCommand('hitch-0011223344556677', { cols: 0, rows: 24 }, 'attach')).toThrow(/not a terminal size/);
    expect(() => commands.sendKeys(name, '%1', 'x; kill-server', 1, Buffer.from('x'))).toThrow(/not a keys mark/);
    expect(() => commands.sendKeys(name, '%1; kill-server', mark, 1, Buffer.from('x'))).toThrow(/not a tmux pane id/);
    expect(() => commands.sendKeys(name, '%1', mark, 0, Buffer.from('x'))).toThrow(/not a keys number/);
    expect(keyPieces(Buffer.alloc(600)).map((p) => p.length)).toEqual([256, 256, 88]);
    expect(parseKeysApplied(['HITCH_KEYS_0a1b2c3d=12x', 'HITCH_KEYS_0a1b2c3d0=5'], mark)).toBe(0);
    expect(parseLeftRunning('hitch-0011223344556677 %1 123\nmine %2 456\nhitch-00112233445566zz %3 7\n')).toEqual([{ name: 'hitch-0011223344556677', pid: 123 }]);
    expect(unescapeOutput(Buffer.from('a\\015\\012b\\\\'))).toEqual(Buffer.from('a\r\nb\\\\'));
  });
});

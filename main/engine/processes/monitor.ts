// A monitor channel per SSH connection: one `sh` without a pty, kept open, to which Hitch
// writes fixed scripts (a `ps` snapshot, a `kill`) and reads their output. One round trip per
// snapshot, no new channel, nothing printed into any terminal. Scripts are assembled only
// from integers and names from a fixed list, never from text a person or a server supplied.
import type { ClientChannel } from 'ssh2';
import { SIGNAL_NAMES, type SignalName } from '../../../preload/api';
import { HitchError } from '../errors';
import type { MasterConnection } from '../masters/master';
import { PS_COMMAND, parsePs, type PsRow } from './process-tree';


export type KillResult = 'sent' | 'no-such-process' | 'permission-denied' | 'failed';

/** How long one script may take before the monitor is considered dead. */
const SCRIPT_TIMEOUT_MS = 15_000;
/** Output one script may produce (a ps of 500 processes is about 100 KB); past it the monitor is closed. */
export const MAX_SCRIPT_OUTPUT = 8 * 1024 * 1024;
/** What the monitor's shell may print before its first line. */
const MAX_GREETING = 64 * 1024;

function assertPids(pids: number[]): void {
  for (const pid of pids) {
    if (!Number.isSafeInteger(pid) || pid < 2 || pid > 0x3fffffff) throw new HitchError('bad-request', `Not a process id: ${pid}.`);
  }
}

export class ProcessMonitor {
  private buffer = '';
  private queue: Promise<unknown> = Promise.resolve();
  private waiting: { marker: string; resolve: (out: string) => void; reject: (e: Error) => void } | null = null;
  private next = 1;
  closed = false;

  private constructor(
    private readonly channel: ClientChannel,
    /** The sshd process serving this connection: every session's first process is its child. */
    readonly sshdPid: number,
    /** The monitor's own shell, hidden from trees. */
    readonly monitorPid: number,
    /** The remote user's uid: sshd refuses session signals for root before OpenSSH 10.0. */
    readonly uid: number,
  ) {
    channel.setEncoding('utf8');
    channel.on('data', (chunk: string) => this.receive(chunk));
    channel.stderr.resume(); // scripts redirect what they need; never let stderr back up
    channel.on('close', () => {
      this.closed = true;
      this.waiting?.reject(new HitchError('network', 'The process monitor channel closed.'));
      this.waiting = null;
    });
  }

  static async start(connection: MasterConnection): Promise<ProcessMonitor> {
    const channel = await connection.openMonitor();
    let text = '';
    channel.setEncoding('utf8');
    const hello = new Promise<string>((resolve, reject) => {
      const onData = (chunk: string): void => {
        text += chunk;
        const line = /^(\d+) (\d+) (\d+)\n/.exec(text);
        if (!line && text.length > MAX_GREETING) {
          channel.removeListener('data', onData);
          channel.close();
          reject(new HitchError('channel', 'The process monitor printed something other than its first line; process trees are off for this connection.'));
          return;
        }
        if (line) {
          channel.removeListener('data', onData);
          resolve(text);
        }
      };
      channel.on('data', onData);
      channel.once('close', () => reject(new HitchError('channel', 'The process monitor ended before it started.')));
    });
    channel.write('exec 2>/dev/null; echo "$$ $PPID $(id -u)"\n');
    const first = await hello;
    const [, monitorPid, sshdPid, uid] = /^(\d+) (\d+) (\d+)\n/.exec(first)!;
    const monitor = new ProcessMonitor(channel, Number(sshdPid), Number(monitorPid), Number(uid));
    monitor.buffer = first.slice(first.indexOf('\n') + 1);
    return monitor;
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_SCRIPT_OUTPUT + 64) {
      // Output no script of ours makes: the shell is not ours to trust any more.
      this.buffer = '';
      const w = this.waiting;
      this.waiting = null;
      w?.reject(new HitchError('channel', `The process monitor sent more than ${MAX_SCRIPT_OUTPUT} bytes for one request; it was closed.`));
      this.close();
      return;
    }
    const w = this.waiting;
    if (!w) return;
    const at = this.buffer.indexOf(w.marker);
    if (at < 0) return;
    const out = this.buffer.slice(0, at);
    this.buffer = this.buffer.slice(at + w.marker.length);
    this.waiting = null;
    w.resolve(out);
  }

  /** Runs one of our scripts; scripts run one at a time, in order. */
  private run(script: string): Promise<string> {
    const result = this.queue.then(
      () =>
        new Promise<string>((resolve, reject) => {
          if (this.closed) {
            reject(new HitchError('network', 'The process monitor channel is closed.'));
            return;
          }
          const marker = `\n__hitch_done_${this.next++}__\n`;
          const timer = setTimeout(() => {
            this.waiting = null;
            reject(new HitchError('timeout', 'The server did not answer the process monitor in time.'));
          }, SCRIPT_TIMEOUT_MS);
          this.waiting = {
            marker,
            resolve: (out) => (clearTimeout(timer), resolve(out)),
            reject: (e) => (clearTimeout(timer), reject(e)),
          };
          this.channel.write(`${script}\nprintf '${marker.replace(/\n/g, '\\n')}'\n`);
        }),
    );
    this.queue = result.catch(() => undefined);
    return result;
  }

  async snapshot(): Promise<{ rows: PsRow[]; at: number }> {
    const out = await this.run(PS_COMMAND);
    return { rows: parsePs(out).rows, at: Date.now() / 1000 };
  }

  /**
   * Sends `signal` to each pid and reports per pid; then waits up to ~200 ms for them to be
   * gone, so that the snapshot that follows usually confirms the outcome.
   */
  async kill(pids: number[], signal: SignalName): Promise<Map<number, KillResult>> {
    assertPids(pids);
    if (!(SIGNAL_NAMES as readonly string[]).includes(signal)) throw new HitchError('bad-request', `Unknown signal ${signal}.`);
    const list = pids.join(' ');
    const script =
      `for p in ${list}; do if e=$(kill -s ${signal} "$p" 2>&1); then echo "$p sent"; else echo "$p fail $e"; fi; done; ` +
      `i=0; while [ $i -lt 20 ]; do a=0; for p in ${list}; do kill -0 "$p" 2>/dev/null && a=1; done; ` +
      `[ $a = 0 ] && break; sleep 0.01; i=$((i+1)); done`;
    const out = await this.run(script);
    const results = new Map<number, KillResult>();
    for (const line of out.split('\n')) {
      const m = /^(\d+) (sent|fail)(?: (.*))?$/.exec(line);
      if (!m) continue;
      const why = m[3] ?? '';
      results.set(
        Number(m[1]),
        m[2] === 'sent' ? 'sent' : /no such process/i.test(why) ? 'no-such-process' : /not permitted/i.test(why) ? 'permission-denied' : 'failed',
      );
    }
    return results;
  }

  close(): void {
    this.closed = true;
    this.channel.close();
  }
}

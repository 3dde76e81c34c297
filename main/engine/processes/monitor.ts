// A monitor channel per SSH connection: one `sh` without a pty, kept open, to which Hitch
// writes fixed scripts (a `ps` snapshot, a `kill`) and reads their output. One round trip per
// snapshot, no new channel, nothing printed into any terminal. Scripts are assembled only
// from integers and names from a fixed list, never from text a person or a server supplied.
import type { ClientChannel } from 'ssh2';
import { SIGNAL_NAMES, type SignalName, type SignalOutcome } from '../../../preload/api';
import { HitchError } from '../errors';
import type { MasterConnection } from '../masters/master';
import { PS_COMMAND, parsePs, type PsRow } from './process-tree';

/** How long one script may take before the monitor is considered dead. */
const SCRIPT_TIMEOUT_MS = 15_000;
/** Output one script may produce (a ps of 500 processes is about 100 KB); past it the monitor is closed. */
export const MAX_SCRIPT_OUTPUT = 8 * 1024 * 1024;
/** What the monitor's shell may print before its first line. */
const MAX_GREETING = 64 * 1024;
/** The monitor's first line: its pid, its parent's (sshd's), the user's uid, and which machine this is. */
const GREETING = /^(\d+) (\d+) (\d+)(?: ([^\n]*))?\n/;
/** How long a person's session waits for the monitor to give its slot up before it opens elsewhere. */
const GIVE_UP_MS = 2_000;

function assertPids(pids: number[]): void {
  for (const pid of pids) {
    if (!Number.isSafeInteger(pid) || pid < 2 || pid > 0x3fffffff) throw new HitchError('bad-request', `Not a process id: ${pid}.`);
  }
}

/** Closes a channel: true once the server has closed it too, false if it has not within `ms`. */
function closeChannel(channel: ClientChannel, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    channel.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    channel.close();
  });
}

export class ProcessMonitor {
  private buffer = '';
  private queue: Promise<unknown> = Promise.resolve();
  private waiting: { marker: string; resolve: (out: string) => void; reject: (e: Error) => void } | null = null;
  private next = 1;
  closed = false;
  /** False once the monitor gives its slot up: it takes no more scripts. */
  private accepting = true;
  /** Signal scripts running or queued: the monitor keeps its slot until they answer. */
  private signalling = 0;

  private constructor(
    private readonly channel: ClientChannel,
    /** The sshd process serving this connection: every session's first process is its child. */
    readonly sshdPid: number,
    /** The monitor's own shell, hidden from trees. */
    readonly monitorPid: number,
    /** The remote user's uid: sshd refuses session signals for root before OpenSSH 10.0. */
    readonly uid: number,
    /**
     * Which machine the monitor runs on (its boot id, or its host name where there is none):
     * another connection's processes are watched through it only on the same one. Null: unknown.
     */
    readonly machine: string | null,
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
    // A person's session may need the slot while the monitor still starts: it closes at once then.
    let monitor: ProcessMonitor | null = null;
    let closing = false;
    connection.yieldsSlot(channel, () => {
      if (monitor) return monitor.giveUpSlot();
      if (closing) return Promise.resolve(false); // one slot, given once
      closing = true;
      return closeChannel(channel, GIVE_UP_MS);
    });
    let text = '';
    channel.setEncoding('utf8');
    const hello = new Promise<string>((resolve, reject) => {
      const onData = (chunk: string): void => {
        text += chunk;
        const line = GREETING.exec(text);
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
    channel.write('exec 2>/dev/null; echo "$$ $PPID $(id -u) $(cat /proc/sys/kernel/random/boot_id || hostname)"\n');
    const first = await hello;
    const [, monitorPid, sshdPid, uid, machine] = GREETING.exec(first)!;
    const started = new ProcessMonitor(channel, Number(sshdPid), Number(monitorPid), Number(uid), machine && /^[\w.-]{1,128}$/.test(machine) ? machine : null);
    started.buffer = first.slice(first.indexOf('\n') + 1);
    monitor = started;
    return started;
  }

  /** Takes scripts: not closed, and not giving its slot up. */
  get usable(): boolean {
    return !this.closed && this.accepting;
  }

  /**
   * Gives the monitor's MaxSessions slot to a person's session: lets the script under way
   * (a snapshot) finish, then closes, resolving true once the server has closed the channel.
   * False, keeping the slot, while a signal waits for its answer or if already given up.
   */
  private async giveUpSlot(): Promise<boolean> {
    if (!this.usable || this.signalling > 0) return false;
    this.accepting = false;
    // The server frees the slot once the shell has exited: a script stuck on the host (a `ps`
    // in uninterruptible sleep) would keep the session waiting, which then opens elsewhere.
    const started = Date.now();
    const drained = await Promise.race([this.queue.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), GIVE_UP_MS).unref())]);
    if (!drained || this.closed) {
      this.close();
      return false;
    }
    return closeChannel(this.channel, Math.max(0, GIVE_UP_MS - (Date.now() - started)));
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
  private run(script: string, timeoutMs = SCRIPT_TIMEOUT_MS): Promise<string> {
    if (!this.accepting) return Promise.reject(new HitchError('max-sessions', 'The process monitor gave its MaxSessions slot to a session.'));
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
            // Its late answer would come where the next script's is read: a new monitor takes over.
            this.close();
          }, timeoutMs);
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
   * Sends `signal` to each pid, then waits on the server, up to `waitMs`, for them to exit
   * (exited but not yet reaped counts as exited); with `escalate`, KILL goes to what is still
   * alive then. One script, so the answer costs one round trip plus the processes' own exit
   * time. Each pid's outcome: `gone`, `alive` (still running, as expected for STOP, CONT,
   * USR1…), `killed`, `still-alive`, or why the signal was not delivered.
   */
  async signalAndWait(pids: number[], signal: SignalName, waitMs: number, escalate: boolean): Promise<Map<number, SignalOutcome['outcome']>> {
    assertPids(pids);
    if (!(SIGNAL_NAMES as readonly string[]).includes(signal)) throw new HitchError('bad-request', `Unknown signal ${signal}.`);
    if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 600_000) throw new HitchError('bad-request', `Not a grace period: ${waitMs} ms.`);
    const list = pids.join(' ');
    // Checks at once up to 100 times (the shell's builtins only: about 3 ms in all, where most
    // jobs exit on TERM), then every 10 ms for the first 200 ms, then every 50 ms.
    const script =
      `alive() { kill -0 "$1" 2>/dev/null || return 1; [ -r "/proc/$1/stat" ] || return 0; ` +
      `read -r s < "/proc/$1/stat" 2>/dev/null || return 1; s=\${s##*) }; [ "\${s%% *}" != Z ]; }; ` +
      `sent=""; for p in ${list}; do if e=$(kill -s ${signal} "$p" 2>&1); then sent="$sent $p"; else echo "$p fail $e"; fi; done; ` +
      `w=0; n=0; while [ $w -lt ${waitMs} ]; do a=0; for p in $sent; do alive "$p" && a=1; done; [ $a = 0 ] && break; ` +
      `if [ $n -lt 100 ]; then n=$((n+1)); elif [ $w -lt 200 ]; then sleep 0.01; w=$((w+10)); else sleep 0.05; w=$((w+50)); fi; done; ` +
      `for p in $sent; do if ! alive "$p"; then echo "$p gone"; elif [ ${escalate ? 1 : 0} = 1 ]; then kill -s KILL "$p" 2>/dev/null; ` +
      `k=0; while alive "$p" && [ $k -lt 50 ]; do sleep 0.01; k=$((k+1)); done; if alive "$p"; then echo "$p still-alive"; else echo "$p killed"; fi; ` +
      `else echo "$p alive"; fi; done`;
    this.signalling++;
    let out: string;
    try {
      out = await this.run(script, SCRIPT_TIMEOUT_MS + waitMs);
    } finally {
      this.signalling--;
    }
    const results = new Map<number, SignalOutcome['outcome']>();
    for (const line of out.split('\n')) {
      const m = /^(\d+) (gone|alive|killed|still-alive|fail)(?: (.*))?$/.exec(line);
      if (!m) continue;
      const why = m[3] ?? '';
      const outcome = m[2] !== 'fail' ? (m[2] as SignalOutcome['outcome']) : /no such process/i.test(why) ? 'no-such-process' : /not permitted/i.test(why) ? 'permission-denied' : 'failed';
      results.set(Number(m[1]), outcome);
    }
    return results;
  }

  close(): void {
    this.closed = true;
    this.channel.close();
  }
}

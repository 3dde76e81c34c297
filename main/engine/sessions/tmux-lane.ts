// The order in which Hitch asks one host's tmux server for work that could crash it.
//
// tmux before 3.7 (Debian 12 has 3.3a) crashes when it sends a notification to a control
// client that is still starting: the client says it is one (MSG_IDENTIFY_FLAGS) before it is
// set up as one (MSG_IDENTIFY_DONE), and `control_write` then follows a null pointer (tmux
// issue 4980, fixed in 3.7). Every durable shell on the host dies with the server, and their
// jobs with them. Seen here as segfaults of "tmux: server" whenever a new shell started while
// others rejoined after a reconnect.
//
// The notifications that reach a starting client are those tmux sends to every control
// client: a session created or closed, a client detached. So Hitch never does any of these
// while one of its control clients is starting on that host:
// - exclusive: starting a new shell (new-session), ending one (kill-session), closing or
//   detaching a carrier (its client detaches);
// - shared: rejoining a shell (attach-session). Attaching only notifies clients attached to a
//   session, which a starting client is not yet: rejoins run side by side.
// The lane is one per host account (user@hostname:port, whatever the jumps), as the tmux
// server is. What Hitch cannot order is left: a shell a person ends with `exit`, a carrier its
// sshd ends late after a dead connection, another Hitch on the same account.

interface Waiting {
  exclusive: boolean;
  start(): void;
}

export class TmuxLane {
  private shared = 0;
  private exclusive = false;
  private readonly waiting: Waiting[] = [];

  /** Runs `work` once nothing else runs on the lane; nothing starts beside it until it settles. */
  alone<T>(work: () => Promise<T>): Promise<T> {
    return this.run(true, work);
  }

  /** Runs `work` beside other shared work, once no exclusive work runs or waits before it. */
  beside<T>(work: () => Promise<T>): Promise<T> {
    return this.run(false, work);
  }

  /** Nothing runs or waits. */
  get idle(): boolean {
    return this.shared === 0 && !this.exclusive && this.waiting.length === 0;
  }

  private run<T>(exclusive: boolean, work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        exclusive,
        start: () => {
          let settled: Promise<T>;
          try {
            settled = work();
          } catch (err) {
            settled = Promise.reject(err as Error);
          }
          // The lane is free again before the caller goes on.
          settled.then(
            (value) => {
              this.ended(exclusive);
              resolve(value);
            },
            (err: unknown) => {
              this.ended(exclusive);
              reject(err as Error);
            },
          );
        },
      });
      this.next();
    });
  }

  private ended(exclusive: boolean): void {
    if (exclusive) this.exclusive = false;
    else this.shared--;
    this.next();
  }

  /** Starts waiting work in order: first come, first served, shared work together. */
  private next(): void {
    while (this.waiting.length > 0 && !this.exclusive) {
      const first = this.waiting[0]!;
      if (first.exclusive && this.shared > 0) return;
      this.waiting.shift();
      if (first.exclusive) this.exclusive = true;
      else this.shared++;
      first.start();
    }
  }
}

// Noticing that the computer slept. A timer that should fire every second and fires much
// later means the process was not running meanwhile: the machine slept (or the process was
// stopped). Electron's powerMonitor says so too, in the desktop app; this works everywhere.
// After a wake, TCP connections often look alive until a write fails, so the engine then
// probes every master at once instead of waiting for keepalives to go unanswered.

/** How often the clock is looked at. */
export const WAKE_TICK_MS = 1_000;
/** A tick this much later than due means the process did not run meanwhile. */
export const WAKE_GAP_MS = 4_000;

export class WakeDetector {
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  constructor(
    /** Called with how long the process was away, in ms. */
    private readonly woke: (awayMs: number) => void,
    private readonly now: () => number = Date.now,
    private readonly tickMs = WAKE_TICK_MS,
    private readonly gapMs = WAKE_GAP_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.last = this.now();
    this.timer = setInterval(() => this.check(), this.tickMs);
    this.timer.unref();
  }

  /** One look at the clock (the timer's; tests call it with their own clock). */
  check(): void {
    const now = this.now();
    const late = now - this.last - this.tickMs;
    this.last = now;
    if (late >= this.gapMs) this.woke(late + this.tickMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

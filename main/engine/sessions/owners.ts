// Who holds the engine's sessions. Every client of the engine (a page, a window, a `hitch`
// command, the desktop shell) is an owner, named by its connection or, for a page that
// survives its own reloads, by a key it keeps (sessionStorage). A session ends with its
// owner: at once for a command-line client, after a short grace for a page, so that a reload
// takes its sessions back instead of losing them.

export class Owners {
  /** Connections present per owner name (a duplicated browser tab shares its key). */
  private readonly present = new Map<string, number>();
  /** Owners that left, with the timer that will end their sessions unless they come back. */
  private readonly leaving = new Map<string, NodeJS.Timeout>();

  /** `release` ends whatever the owner still holds; called once the owner has really gone. */
  constructor(private readonly release: (owner: string) => void) {}

  joined(owner: string): void {
    clearTimeout(this.leaving.get(owner));
    this.leaving.delete(owner);
    this.present.set(owner, (this.present.get(owner) ?? 0) + 1);
  }

  left(owner: string, graceMs: number): void {
    const count = (this.present.get(owner) ?? 0) - 1;
    if (count > 0) {
      this.present.set(owner, count);
      return;
    }
    this.present.delete(owner);
    if (graceMs <= 0) {
      this.release(owner);
      return;
    }
    const timer = setTimeout(() => {
      this.leaving.delete(owner);
      this.release(owner);
    }, graceMs);
    timer.unref();
    this.leaving.set(owner, timer);
  }

  /** Connected, or gone for less than its grace period. */
  holds(owner: string): boolean {
    return this.present.has(owner) || this.leaving.has(owner);
  }

  clear(): void {
    for (const timer of this.leaving.values()) clearTimeout(timer);
    this.leaving.clear();
  }
}

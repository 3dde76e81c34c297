// The client side of the API contract over any message transport (the web host's WebSocket,
// the engine socket): numbered calls matched to their replies, events to listeners, and one
// clear answer for every call still waiting when the connection is lost. Each transport only
// frames messages and reports what arrives; the renderer's bridge and the engine-socket client
// (the `hitch` command, a second app) both stand on this. Free of Node and DOM imports.
import type { ErrorInfo, EventMessage, HitchBridge, Reply } from './channels';

export class RpcClient implements HitchBridge {
  private readonly pending = new Map<number, (reply: Reply) => void>();
  private readonly listeners = new Set<(event: EventMessage) => void>();
  private readonly closeListeners = new Set<(reason: string) => void>();
  private nextId = 1;
  private closedReason: string | null = null;

  /** `write` sends one request message; it is called only while the connection is up. */
  constructor(private readonly write: (message: { id: number; method: string; params: unknown }) => void) {}

  get closed(): boolean {
    return this.closedReason !== null;
  }

  call(method: string, params: unknown): Promise<Reply> {
    if (this.closedReason !== null) return Promise.resolve(lostReply(this.closedReason));
    const id = this.nextId++;
    return new Promise<Reply>((resolve) => {
      this.pending.set(id, resolve);
      this.write({ id, method, params: params ?? {} });
    });
  }

  onEvent(listener: (event: EventMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called once when the connection is lost (or closed), with the reason. */
  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== null) listener(this.closedReason);
    else this.closeListeners.add(listener);
  }

  /**
   * One message from the other side, parsed: a reply by id, an event, or a refusal of the
   * whole connection. What follows a reply waits a turn, so that the code awaiting the reply
   * runs first (as it does in a browser, where each message is a task of its own): a client
   * learns of a session from the reply before it meets the session's events.
   */
  receive(message: unknown): void {
    if (this.backlog) {
      this.backlog.push(message);
      return;
    }
    if (this.handle(message)) {
      this.backlog = [];
      setTimeout(() => {
        const waiting = this.backlog ?? [];
        this.backlog = null;
        for (const next of waiting) this.receive(next); // a later reply starts a new backlog
      }, 0);
    }
  }

  /** Messages that arrived after a reply, until the reply's awaiting code has run. */
  private backlog: unknown[] | null = null;

  /** Delivers one message; true when it was a reply. */
  private handle(message: unknown): boolean {
    if (typeof message !== 'object' || message === null) return false;
    const record = message as Record<string, unknown>;
    if (typeof record.event === 'string') {
      for (const listener of this.listeners) listener(record as unknown as EventMessage);
    } else if (typeof record.id === 'number') {
      const resolve = this.pending.get(record.id);
      this.pending.delete(record.id);
      const reply: Record<string, unknown> = { ...record };
      delete reply.id;
      resolve?.(reply as unknown as Reply);
      return true;
    } else if (record.ok === false) {
      // Not an answer to a request: the other side refused this connection as a whole.
      this.lost((record.error as ErrorInfo | undefined)?.message ?? 'The Hitch engine refused this connection.');
    }
    return false;
  }

  /** The connection is gone: every waiting call gets a network error saying why. Idempotent. */
  lost(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const resolve of this.pending.values()) resolve(lostReply(reason));
    this.pending.clear();
    for (const listener of this.closeListeners) listener(reason);
    this.closeListeners.clear();
  }
}

function lostReply(reason: string): Reply {
  return { ok: false, error: { code: 'network', message: reason } };
}

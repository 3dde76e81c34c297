// One client of the engine: a page, a window, a `hitch` command, the desktop shell. Every
// transport opens a connection per client and closes it when the client goes; the transport
// itself is then only framing and its own access check. The connection is the client's
// context: which sessions it streams (attached), whether it follows the engine's state, and
// the sessions it holds, which end when it goes (after a grace period for a page that
// identified itself, so that a reload takes them back).
import { TERMINAL_FLOW, wsRequestSchema, type HitchEvent, type SessionView } from '../../preload/api';
import type { EventMessage, HitchBridge, Reply } from '../../preload/channels';
import { RpcClient } from '../../preload/rpc-client';
import { bytesAsBase64 } from './bytes';
import { HitchError } from '../engine/errors';
import type { Caller, Router } from './router';

/** What a connection sends its client: a reply to a numbered request, or an event. */
export type Outgoing = ({ id: number | null } & Reply) | HitchEvent;

export interface Connection {
  /** One message from the client, parsed from its framing but not yet checked. */
  request(message: unknown): void;
  /** The client has gone: nothing more is sent, and what it held is let go. Idempotent. */
  close(): void;
  /**
   * The transport's buffer towards the client is full (`true`) or has drained: the output of
   * the sessions it streams waits meanwhile (flow control to the SSH channel).
   */
  backpressure?(full: boolean): void;
}

/** What a transport can carry, beyond JSON. */
export interface TransportOptions {
  /**
   * The transport sends bytes as they are (the engine socket's binary frames): a raw session's
   * output reaches `send` as a Buffer (`encoding: 'bytes'`). Otherwise it arrives in base64.
   */
  bytes?: boolean;
}

/** What a transport serves: a connection per client, to an engine here or behind the engine socket. */
export interface Api {
  openConnection(send: (message: Outgoing) => void, transport?: TransportOptions): Connection;
}

/**
 * A connection to an API known later (an engine being started or found): requests made
 * before then wait for it, and what the transport reports is passed on once it is there.
 */
export function deferredConnection(api: Promise<Api>, send: (message: Outgoing) => void, transport?: TransportOptions, failed?: (err: Error) => void): Connection {
  let connection: Connection | null = null;
  let closed = false;
  let full = false;
  const waiting: unknown[] = [];
  api.then(
    (ready) => {
      if (closed) return;
      connection = ready.openConnection(send, transport);
      if (full) connection.backpressure?.(true);
      for (const message of waiting.splice(0)) connection.request(message);
    },
    (err: Error) => {
      if (!closed) failed?.(err);
    },
  );
  return {
    request(message) {
      if (connection) connection.request(message);
      else if (!closed) waiting.push(message);
    },
    backpressure(on) {
      full = on;
      connection?.backpressure?.(on);
    },
    close() {
      closed = true;
      connection?.close();
    },
  };
}

export interface ConnectionOptions {
  /** How long a page that named itself (client.identify) may take to come back from a reload. */
  reloadGraceMs?: number;
}

/** Seconds are plenty for a reload; a page closed for good lets its shells go soon after. */
export const RELOAD_GRACE_MS = 15_000;

/** Every API client needs to hear of prompts: whoever is there may be the person to answer. */
const FOR_EVERYONE = new Set<HitchEvent['event']>(['prompt.opened', 'prompt.closed']);

const ENVELOPE_HINT = 'A request is {"id": number, "method": string, "params": object}.';

let nextClient = 1;

export function openConnection(router: Router, sendOut: (message: Outgoing) => void, opts: ConnectionOptions & TransportOptions = {}): Connection {
  const send = opts.bytes ? sendOut : (message: Outgoing): void => sendOut('event' in message ? bytesAsBase64(message) : message);
  // Owner names: `conn:` for this connection, `key:` for a key a page names (apart, so that
  // no key can name another client's connection).
  const id = `conn:${process.pid}-${nextClient++}`;
  /** Owner names this client joined under: its own id, and its key once it names one. */
  const owners = [id];
  let key: string | null = null;
  let watching = false;
  let closed = false;
  /** The transport is full: the sessions this client streams are held (Connection.backpressure). */
  let full = false;
  const attached = new Set<string>();
  /**
   * Sessions attached by calls whose reply has not gone out yet: their events wait, so that
   * the client learns of a session (and its scrollback) before any of its output.
   */
  const held = new Map<string, HitchEvent[]>();
  /**
   * Sessions this client acknowledges (attached with `ack`): characters sent and not yet
   * acknowledged, and whether that holds the session's output (TERMINAL_FLOW).
   */
  const acking = new Map<string, { unacked: number; holding: boolean; high: number; low: number }>();
  /** The name acknowledgements hold sessions under: apart from the transport's, as each lets go on its own. */
  const ackHolder = `${id} unacknowledged`;

  const stopAcking = (sessionId: string): void => {
    if (acking.get(sessionId)?.holding) router.holdOutput(sessionId, ackHolder, false);
    acking.delete(sessionId);
  };

  const sessionOf = (event: HitchEvent): string | null => {
    switch (event.event) {
      case 'session.data':
      case 'session.removed':
        return event.payload.sessionId;
      case 'session.changed':
        return event.payload.id;
      default:
        return null;
    }
  };

  const deliver = (event: HitchEvent): void => {
    const sessionId = sessionOf(event);
    const wanted = sessionId !== null ? attached.has(sessionId) || (watching && event.event !== 'session.data') : watching || FOR_EVERYONE.has(event.event);
    if (!wanted) return;
    const waiting = sessionId !== null ? held.get(sessionId) : undefined;
    if (waiting) waiting.push(event);
    else send(event);
    if (event.event === 'session.data') {
      const flow = acking.get(event.payload.sessionId);
      if (flow) {
        flow.unacked += event.payload.data.length;
        if (!flow.holding && flow.unacked > flow.high) {
          flow.holding = true;
          router.holdOutput(event.payload.sessionId, ackHolder, true);
        }
      }
    }
    if (event.event === 'session.removed' && sessionId !== null) {
      attached.delete(sessionId);
      acking.delete(sessionId);
    }
  };
  const unsubscribe = router.onEvent((event) => {
    if (!closed) deliver(event);
  });
  router.clientJoined(id);

  const caller = (attachedNow: string[]): Caller => ({
    get owner() {
      return key ?? id;
    },
    attach(sessionId, { ack = false } = {}) {
      // Held even when attached already: what the session does until the reply is out follows it.
      if (!held.has(sessionId)) held.set(sessionId, []);
      attached.add(sessionId);
      attachedNow.push(sessionId);
      if (full) router.holdOutput(sessionId, id, true);
      // Counting starts afresh: the client acknowledges what follows the scrollback it is answered with.
      stopAcking(sessionId);
      if (ack) {
        const skips = router.skipsHeldOutput(sessionId);
        acking.set(sessionId, { unacked: 0, holding: false, high: skips ? TERMINAL_FLOW.skipHighChars : TERMINAL_FLOW.highChars, low: skips ? TERMINAL_FLOW.skipLowChars : TERMINAL_FLOW.lowChars });
      }
    },
    acknowledge(sessionId, chars) {
      const flow = acking.get(sessionId);
      if (!flow) return; // not attached with `ack` (any more): nothing waits for it
      flow.unacked = Math.max(0, flow.unacked - chars);
      if (flow.holding && flow.unacked < flow.low) {
        flow.holding = false;
        router.holdOutput(sessionId, ackHolder, false);
      }
    },
    detach(sessionId) {
      attached.delete(sessionId);
      held.delete(sessionId);
      router.holdOutput(sessionId, id, false);
      stopAcking(sessionId);
    },
    watchState() {
      watching = true;
    },
    identify(newKey): SessionView[] {
      if (key !== null) throw new HitchError('bad-request', 'This client has named itself already (client.identify is called once per connection).');
      key = `key:${newKey}`;
      owners.push(key);
      return router.clientJoined(key);
    },
  });

  const answer = (requestId: number | null, reply: Reply): void => {
    if (!closed) send({ id: requestId, ...reply });
  };

  return {
    request(message) {
      if (closed) return;
      const envelope = wsRequestSchema.safeParse(message);
      if (!envelope.success) {
        const given = (message as { id?: unknown } | null)?.id;
        answer(typeof given === 'number' ? given : null, { ok: false, error: { code: 'bad-request', message: ENVELOPE_HINT } });
        return;
      }
      const { id: requestId, method, params } = envelope.data;
      const attachedNow: string[] = [];
      void router.call(caller(attachedNow), method, params).then((reply) => {
        answer(requestId, reply);
        // The reply is out: what its sessions did meanwhile follows it, in order.
        for (const sessionId of attachedNow) {
          const waiting = held.get(sessionId);
          held.delete(sessionId);
          if (!closed) for (const event of waiting ?? []) send(event);
        }
      });
    },
    backpressure(on) {
      if (closed || on === full) return;
      full = on;
      for (const sessionId of attached) router.holdOutput(sessionId, id, on);
    },
    close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      held.clear();
      if (full) for (const sessionId of attached) router.holdOutput(sessionId, id, false);
      for (const sessionId of [...acking.keys()]) stopAcking(sessionId);
      attached.clear();
      for (const owner of owners) router.clientLeft(owner, owner === key ? (opts.reloadGraceMs ?? RELOAD_GRACE_MS) : 0);
    },
  };
}

/** The engine in this process, served to its clients. */
export function localApi(router: Router, opts: ConnectionOptions = {}): Api {
  return { openConnection: (send, transport) => openConnection(router, send, { ...opts, ...transport }) };
}

/**
 * A client inside the process serving the API (the Electron shell's tray and links): the same
 * RpcClient every other client stands on, over a connection of its own. `reopen` starts a new
 * connection, for when the engine behind `api` was replaced; listeners carry over.
 */
export function inProcessBridge(api: Api): HitchBridge & { reopen(): void; close(): void } {
  const listeners = new Set<(event: EventMessage) => void>();
  let rpc: RpcClient;
  let connection: Connection;
  const open = (): void => {
    const client = new RpcClient((message) => connection.request(message));
    client.onEvent((event) => {
      for (const listener of listeners) listener(event);
    });
    connection = api.openConnection((message) => client.receive(message));
    rpc = client;
  };
  open();
  return {
    call: (method, params) => rpc.call(method, params),
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    reopen() {
      connection.close();
      rpc.lost('The engine was replaced.');
      open();
    },
    close() {
      connection.close();
      rpc.lost('Closed.');
    },
  };
}

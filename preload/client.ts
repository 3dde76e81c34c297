// A typed face on the bridge: `call` knows each method's parameters and result, `on` each
// event's payload. Errors come back as ApiError with the engine's code and message.
import type { ErrorInfo, Events, EventName, HitchBridge, Method, Params, Result } from './api';

export class ApiError extends Error {
  constructor(readonly info: ErrorInfo) {
    super(info.message);
  }
}

export class HitchClient {
  private readonly listeners = new Map<string, Set<(payload: never) => void>>();

  constructor(private readonly bridge: HitchBridge) {
    bridge.onEvent(({ event, payload }) => {
      for (const fn of this.listeners.get(event) ?? []) fn(payload as never);
    });
  }

  async call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    const reply = await this.bridge.call(method, params);
    if (!reply.ok) throw new ApiError(reply.error);
    return reply.result as Result<M>;
  }

  on<E extends EventName | 'transport.closed'>(
    event: E,
    fn: (payload: E extends EventName ? Events[E] : null) => void,
  ): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as (payload: never) => void);
    return () => set.delete(fn as (payload: never) => void);
  }
}

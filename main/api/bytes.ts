// A raw session's output is bytes inside the engine; transports that carry only JSON send it
// as base64. Kept apart from connection.ts so that the `hitch` command, which reads bytes off
// the engine socket, does not load the API's schemas to start.
import type { HitchEvent } from '../../preload/api';

/** A raw session's output as base64 text, for transports that carry only JSON. */
export function bytesAsBase64(event: HitchEvent): HitchEvent {
  if (event.event !== 'session.data' || typeof event.payload.data === 'string') return event;
  return { event: event.event, payload: { ...event.payload, data: Buffer.from(event.payload.data).toString('base64'), encoding: 'base64' } };
}

// Engine errors carry a stable code the UI can branch on and a sentence a person can act on,
// in the spirit of ssh2's `err.level`.

export type ErrorCode =
  | 'bad-request' // a message that does not match the API contract
  | 'unknown-host' // no such host in the catalog
  | 'unknown-session'
  | 'not-connected'
  | 'config' // the ssh config cannot be read or is malformed
  | 'dns' // the host name does not resolve
  | 'refused' // nothing listens on that port
  | 'timeout' // no answer in time
  | 'network' // the connection broke
  | 'auth' // every authentication method failed
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'host-key-revoked'
  | 'channel' // the server refused a session channel
  | 'max-sessions' // the server refused a session past its MaxSessions
  | 'cancelled' // the person cancelled a login prompt
  | 'internal';

export class HitchError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HitchError';
  }

  toInfo(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Any thrown value as a HitchError; unknown failures keep their message under `internal`. */
export function toHitchError(err: unknown): HitchError {
  if (err instanceof HitchError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HitchError('internal', message, { cause: err });
}

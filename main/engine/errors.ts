// Engine errors carry a stable code the UI can branch on and a sentence a person can act on,
// in the spirit of ssh2's `err.level`. The codes are the one union of preload/channels.ts.
import type { ErrorCode } from '../../preload/channels';

export type { ErrorCode };

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

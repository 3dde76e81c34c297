// A small structured logger: one JSON object per line on stderr. The engine never passes
// secrets to it; `redact` is the second line of defence for fields that might carry one.

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const SECRET_FIELDS = /pass(word|phrase)?|secret|token|otp|response/i;
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = SECRET_FIELDS.test(key) ? '[redacted]' : value;
  }
  return out;
}

export function createLogger(
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
  minLevel: Level = (process.env.HITCH_LOG_LEVEL as Level | undefined) ?? 'info',
): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (order[level] < (order[minLevel] ?? order.info)) return;
    // The line's own time, level and message come last: no field can overwrite them.
    write(JSON.stringify({ ...(fields ? redact(fields) : {}), time: new Date().toISOString(), level, msg }));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

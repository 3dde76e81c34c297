// OpenSSH's forward specs, as `ssh -L/-R/-D` take them and `hitch forward` does too:
// `[BIND:]PORT:HOST:HOSTPORT` for local and remote forwards, `[BIND:]PORT` for dynamic ones,
// an IPv6 address in brackets (`[::1]:8080:[fe80::1]:80`). Checked completely here, so that a
// bad spec is refused before anything is sent. Plain data, shared by the CLI and the UI.
import type { ForwardKind, ForwardView } from './api';

export interface ParsedForward {
  kind: ForwardKind;
  /** `localhost` unless given; `*` (or an empty BIND, as OpenSSH reads it) means every address. */
  bindAddress: string;
  listenPort: number;
  connectHost: string | null;
  connectPort: number | null;
}

/** A host name or address as the API takes it (no spaces, no control characters, no brackets). */
const HOST = /^[A-Za-z0-9._:%-]+$/;

/** Splits at colons outside brackets; a bracketed part comes back without its brackets. */
function fields(spec: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field: string;
    if (spec[i] === '[') {
      const close = spec.indexOf(']', i);
      if (close === -1) return null;
      field = spec.slice(i + 1, close);
      i = close + 1;
      if (i < spec.length && spec[i] !== ':') return null;
    } else {
      const colon = spec.indexOf(':', i);
      field = spec.slice(i, colon === -1 ? spec.length : colon);
      i = colon === -1 ? spec.length : colon;
    }
    out.push(field);
    if (i >= spec.length) return out;
    i++; // the colon
    if (i === spec.length) return null; // a trailing colon
  }
}

function port(text: string, what: string, min: number): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < min || Number(text) > 65535) throw new Error(`${what} "${text}" is not a port (${min} to 65535)`);
  return Number(text);
}

function host(text: string, what: string): string {
  if (!HOST.test(text) || text.length > 255) throw new Error(`${what} "${text}" is not a host name or address`);
  return text;
}

function bind(text: string | undefined): string {
  if (text === undefined) return 'localhost';
  if (text === '' || text === '*') return '*';
  return host(text, 'bind address');
}

/** Parses one spec; throws an Error saying what is wrong with it. */
export function parseForwardSpec(kind: ForwardKind, spec: string): ParsedForward {
  const flag = kind === 'local' ? '-L' : kind === 'remote' ? '-R' : '-D';
  const usage = kind === 'dynamic' ? '[BIND:]PORT' : '[BIND:]PORT:HOST:HOSTPORT';
  const parts = fields(spec);
  const fail = (why: string): never => {
    throw new Error(`${flag} ${spec}: ${why} (expected ${usage})`);
  };
  try {
    if (!parts) return fail('unbalanced brackets or a stray colon');
    if (kind === 'dynamic') {
      if (parts.length > 2) return fail('too many fields');
      const [b, p] = parts.length === 2 ? parts : [undefined, parts[0]!];
      return { kind, bindAddress: bind(b), listenPort: port(p!, 'port', 0), connectHost: null, connectPort: null };
    }
    if (parts.length !== 3 && parts.length !== 4) return fail(parts.length < 3 ? 'too few fields' : 'too many fields');
    const [b, p, h, hp] = parts.length === 4 ? parts : [undefined, ...parts];
    return { kind, bindAddress: bind(b), listenPort: port(p!, 'port', 0), connectHost: host(h!, 'host'), connectPort: port(hp!, 'host port', 1) };
  } catch (err) {
    if ((err as Error).message.startsWith(`${flag} `)) throw err;
    return fail((err as Error).message);
  }
}

/** An address for a spec or a listing: an IPv6 one in brackets. */
export function specAddress(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/** Where a forward listens, as `ADDRESS:PORT` (the port it got, when 0 was asked). */
export function listenText(f: Pick<ForwardView, 'bindAddress' | 'listenPort' | 'boundPort'>): string {
  return `${specAddress(f.bindAddress)}:${f.boundPort ?? f.listenPort}`;
}

/** Where its connections go: `HOST:PORT`, or `SOCKS` for a dynamic forward. */
export function targetText(f: Pick<ForwardView, 'connectHost' | 'connectPort'>): string {
  return f.connectHost === null ? 'SOCKS' : `${specAddress(f.connectHost)}:${f.connectPort}`;
}

/** The same forward as a spec asked for: what `--cancel -L SPEC` looks for. */
export function matchesSpec(f: Pick<ForwardView, 'kind' | 'bindAddress' | 'listenPort' | 'boundPort' | 'connectHost' | 'connectPort'>, spec: ParsedForward): boolean {
  return (
    f.kind === spec.kind &&
    f.bindAddress === spec.bindAddress &&
    (f.listenPort === spec.listenPort || (spec.listenPort !== 0 && f.boundPort === spec.listenPort)) &&
    f.connectHost === spec.connectHost &&
    f.connectPort === spec.connectPort
  );
}

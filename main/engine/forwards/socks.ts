// The server side of SOCKS 4, 4a and 5 (CONNECT only, no authentication), as a dynamic
// forward (`ssh -D`) offers it on a local port. Anything else is refused and the socket closed.
import type { Socket } from 'node:net';

export interface SocksTarget {
  host: string;
  port: number;
  /** Answers the client: the connection is through, or it failed. */
  done(ok: boolean): void;
}

/** Longest handshake accepted: SOCKS5's longest request is 262 bytes, SOCKS4a's user + host fit too. */
const MAX_HANDSHAKE = 1024;

type Parsed = { target: Omit<SocksTarget, 'done'>; consumed: number; reply(ok: boolean): Buffer } | 'more';

function cstringAt(buf: Buffer, start: number): { value: string; end: number } | null {
  const nul = buf.indexOf(0, start);
  return nul === -1 ? null : { value: buf.toString('latin1', start, nul), end: nul + 1 };
}

function parseSocks4(buf: Buffer): Parsed {
  if (buf.length < 9) return 'more';
  if (buf[1] !== 1) throw new Error('SOCKS4: only CONNECT is supported');
  const port = buf.readUInt16BE(2);
  const user = cstringAt(buf, 8);
  if (!user) return 'more';
  let host = `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`;
  let end = user.end;
  if (buf[4] === 0 && buf[5] === 0 && buf[6] === 0 && buf[7] !== 0) {
    const name = cstringAt(buf, user.end); // SOCKS4a: the host name follows the user
    if (!name) return 'more';
    host = name.value;
    end = name.end;
  }
  return { target: { host, port }, consumed: end, reply: (ok) => Buffer.from([0, ok ? 0x5a : 0x5b, 0, 0, 0, 0, 0, 0]) };
}

function parseSocks5Request(buf: Buffer, offset: number): Parsed {
  if (buf.length < offset + 5) return 'more';
  if (buf[offset] !== 5) throw new Error('SOCKS5: bad request version');
  if (buf[offset + 1] !== 1) throw new Error('SOCKS5: only CONNECT is supported');
  const atyp = buf[offset + 3];
  let host: string;
  let at = offset + 4;
  if (atyp === 1) {
    if (buf.length < at + 6) return 'more';
    host = [...buf.subarray(at, at + 4)].join('.');
    at += 4;
  } else if (atyp === 3) {
    const len = buf[at]!;
    if (buf.length < at + 1 + len + 2) return 'more';
    host = buf.toString('latin1', at + 1, at + 1 + len);
    at += 1 + len;
  } else if (atyp === 4) {
    if (buf.length < at + 18) return 'more';
    const words: string[] = [];
    for (let i = 0; i < 16; i += 2) words.push(buf.readUInt16BE(at + i).toString(16));
    host = words.join(':');
    at += 16;
  } else {
    throw new Error(`SOCKS5: unknown address type ${atyp}`);
  }
  const port = buf.readUInt16BE(at);
  return { target: { host, port }, consumed: at + 2, reply: (ok) => Buffer.from([5, ok ? 0 : 1, 0, 1, 0, 0, 0, 0, 0, 0]) };
}

/** Reads the client's handshake; resolves with where it wants to go. */
export function socksHandshake(sock: Socket): Promise<SocksTarget> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let greeted = false; // SOCKS5: the method negotiation is done
    let greetingLength = 0;
    const fail = (err: Error): void => {
      sock.removeListener('data', onData);
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_HANDSHAKE) return fail(new Error('SOCKS handshake too long'));
      try {
        let parsed: Parsed;
        if (buf[0] === 4) {
          parsed = parseSocks4(buf);
        } else if (buf[0] === 5) {
          if (!greeted) {
            if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
            const methods = buf.subarray(2, 2 + buf[1]!);
            if (!methods.includes(0)) {
              sock.end(Buffer.from([5, 0xff]));
              return fail(new Error('SOCKS5: the client offers no method without authentication'));
            }
            sock.write(Buffer.from([5, 0]));
            greeted = true;
            greetingLength = 2 + buf[1]!;
          }
          parsed = parseSocks5Request(buf, greetingLength);
        } else {
          return fail(new Error(`not a SOCKS handshake (first byte ${buf[0]})`));
        }
        if (parsed === 'more') return;
        sock.removeListener('data', onData);
        sock.pause();
        const rest = buf.subarray(parsed.consumed);
        if (rest.length > 0) sock.unshift(rest);
        const { reply } = parsed;
        resolve({
          ...parsed.target,
          done: (ok) => {
            if (ok) sock.write(reply(true));
            else sock.end(reply(false));
          },
        });
      } catch (err) {
        fail(err as Error);
      }
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error('closed during the SOCKS handshake')));
  });
}

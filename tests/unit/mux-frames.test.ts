// The control socket's frame parser, body reader and writer (OpenSSH's mux protocol, PROTOCOL.mux).
import { describe, expect, it } from 'vitest';
import { FrameParser, MAX_FRAME, MessageReader, MessageWriter, MSG, ProtocolError, reply, typeName } from '../../main/engine/control-socket/frames';

const aliveCheck = (rid: number): Buffer => new MessageWriter(MSG.C_ALIVE_CHECK).u32(rid).frame();

describe('the frame parser', () => {
  it('waits for whole frames, however the bytes are split', () => {
    const p = new FrameParser();
    const bytes = Buffer.concat([aliveCheck(1), aliveCheck(2)]);
    for (const b of bytes.subarray(0, 11)) p.push(Buffer.from([b]));
    expect(p.next()).toBeNull();
    p.push(bytes.subarray(11));
    expect(p.next()).toEqual({ type: MSG.C_ALIVE_CHECK, body: Buffer.from([0, 0, 0, 1]) });
    expect(p.next()).toEqual({ type: MSG.C_ALIVE_CHECK, body: Buffer.from([0, 0, 0, 2]) });
    expect(p.next()).toBeNull();
    expect(p.buffered).toBe(0);
  });

  it('refuses a frame too short for its type, and one larger than the limit', () => {
    const short = new FrameParser();
    short.push(Buffer.from([0, 0, 0, 3, 1, 2, 3]));
    expect(() => short.next()).toThrow(ProtocolError);
    const huge = new FrameParser();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME + 1);
    huge.push(head); // refused from the length alone, before any body arrives
    expect(() => huge.next()).toThrow(/exceeds/);
  });

  it('pairs the bytes after a request with the descriptors passed beside them', () => {
    const p = new FrameParser();
    p.push(Buffer.concat([new MessageWriter(MSG.C_NEW_SESSION).u32(7).frame(), Buffer.from([0])]));
    p.pushFds([10]);
    expect(p.next()?.type).toBe(MSG.C_NEW_SESSION);
    expect(p.takeFds(3)).toBeNull(); // two bytes still to come
    p.pushFds([11]);
    p.push(Buffer.from([0]));
    p.pushFds([12]);
    p.push(Buffer.concat([Buffer.from([0]), aliveCheck(8)]));
    expect(p.takeFds(3)).toEqual([10, 11, 12]);
    expect(p.next()?.type).toBe(MSG.C_ALIVE_CHECK);
  });

  it('calls bytes that arrive without their descriptors a protocol error', () => {
    const p = new FrameParser();
    p.push(Buffer.from([0, 0, 0]));
    p.pushFds([5]);
    expect(() => p.takeFds(3)).toThrow(/expected 3 file descriptors, received 1/);
  });

  it('hands back descriptors nobody asked for, so they can be closed', () => {
    const p = new FrameParser();
    p.pushFds([20, 21]);
    expect(p.takeStrayFds()).toEqual([20, 21]);
    expect(p.takeStrayFds()).toEqual([]);
  });

  it('gives up the unparsed rest when the connection turns to proxy mode', () => {
    const p = new FrameParser();
    p.push(Buffer.concat([aliveCheck(1), Buffer.from('raw')]));
    p.next();
    expect(p.takeRest().toString()).toBe('raw');
    expect(p.buffered).toBe(0);
  });
});

describe('the message reader', () => {
  const body = new MessageWriter(MSG.C_OPEN_FWD).u32(3).u32(1).string('127.0.0.1').u32(8080).string('db').u32(5432).frame().subarray(8);

  it('reads fields in order and checks that nothing trails', () => {
    const m = new MessageReader(body);
    expect([m.u32(), m.u32(), m.cstring(), m.u32(), m.cstring(), m.u32()]).toEqual([3, 1, '127.0.0.1', 8080, 'db', 5432]);
    expect(() => m.end('OPEN_FWD')).not.toThrow();
  });

  it('refuses to read past the end, a string longer than what is left, or trailing bytes', () => {
    const m = new MessageReader(Buffer.from([0, 0, 0, 1]));
    m.u32();
    expect(() => m.u32('request id')).toThrow(/truncated message: no request id/);
    expect(() => new MessageReader(Buffer.from([0, 0, 0, 9, 65])).cstring('host')).toThrow(/host of 9 bytes, 1 left/);
    expect(() => new MessageReader(Buffer.from([0xff, 0xff, 0xff, 0xff])).bytes()).toThrow(ProtocolError);
    const extra = new MessageReader(Buffer.from([0, 0, 0, 1, 9]));
    extra.u32();
    expect(() => extra.end('ALIVE_CHECK')).toThrow(/1 unexpected trailing bytes/);
  });

  it('refuses a text string holding a NUL byte, as OpenSSH does', () => {
    const m = new MessageReader(new MessageWriter(0).string('a\0b').frame().subarray(8));
    expect(() => m.cstring('connect host')).toThrow(/contains a NUL byte/);
  });
});

describe('the replies', () => {
  it('are laid out as PROTOCOL.mux says', () => {
    expect(reply.hello().toString('hex')).toBe('00000008' + '00000001' + '00000004');
    expect(reply.alive(5, 4242).toString('hex')).toBe('0000000c' + '80000005' + '00000005' + '00001092');
    expect(reply.failure(2, 'no').toString('hex')).toBe('0000000e' + '80000003' + '00000002' + '00000002' + '6e6f');
    expect(reply.sessionOpened(1, 3).readUInt32BE(4)).toBe(MSG.S_SESSION_OPENED);
    expect(reply.exitMessage(3, 255).subarray(8).toString('hex')).toBe('00000003000000ff');
    expect(reply.remotePort(4, 40000).readUInt32BE(12)).toBe(40000);
    expect(reply.ttyAllocFail(3).length).toBe(12);
  });

  it('are read back by the parser', () => {
    const p = new FrameParser();
    p.push(Buffer.concat([reply.ok(9), reply.permissionDenied(10, 'Permission denied')]));
    expect(new MessageReader(p.next()!.body).u32()).toBe(9);
    const denied = p.next()!;
    expect(denied.type).toBe(MSG.S_PERMISSION_DENIED);
    const m = new MessageReader(denied.body);
    expect([m.u32(), m.cstring()]).toEqual([10, 'Permission denied']);
  });

  it('name message types for log lines', () => {
    expect(typeName(MSG.C_NEW_STDIO_FWD)).toBe('C_NEW_STDIO_FWD');
    expect(typeName(0x10000077)).toBe('0x10000077');
  });
});

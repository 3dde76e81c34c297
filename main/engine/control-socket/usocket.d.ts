// The part of usocket 1.1 (Unix sockets with descriptor passing) Hitch uses; it ships no types.
declare module 'usocket' {
  import { Duplex } from 'node:stream';
  import { EventEmitter } from 'node:events';

  export class USocket extends Duplex {
    constructor(opts?: { fd?: number; path?: string; allowHalfOpen?: boolean } | string, cb?: () => void);
    /** The socket's descriptor, once connected or adopted. */
    fd?: number;
    connect(path: string | { path?: string; fd?: number }, cb?: () => void): void;
    /** With a second argument: `count` descriptors (null: all received) beside `size` bytes. */
    read(size?: number | null): Buffer | null;
    read(size: number | null, count: number | null): { data: Buffer | null; fds: number[] } | null;
    write(chunk: Buffer | string | number[] | { data?: Buffer; fds?: number[]; callback?: () => void }, cb?: (err?: Error | null) => void): boolean;
    destroy(): this;
  }

  export class UServer extends EventEmitter {
    fd?: number;
    listening: boolean;
    listen(path: string, backlog?: number, cb?: () => void): void;
    listen(path: string, cb?: () => void): void;
    pause(): void;
    resume(): void;
    close(): void;
  }
}

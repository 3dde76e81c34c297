// The internal ssh2 modules Hitch imports (see ssh2-channels.ts).
declare module 'ssh2/lib/Channel.js' {
  export const MAX_WINDOW: number;
  export const PACKET_SIZE: number;
}

declare module 'ssh2/lib/protocol/utils.js' {
  /** Encrypts and sends one packet made with the protocol's packet writer. */
  export function sendPacket(protocol: unknown, packet: Buffer): void;
}

// The one internal ssh2 module Hitch imports (see ssh2-channels.ts).
declare module 'ssh2/lib/Channel.js' {
  export const MAX_WINDOW: number;
  export const PACKET_SIZE: number;
}

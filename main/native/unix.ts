// The native piece the control socket stands on, loaded on first use so that a machine where
// it did not build still runs Hitch (without control sockets, saying why): hitch-native (Unix
// sockets that pass descriptors, peer credentials, close-on-exec, a terminal's size and modes;
// see native/).
import type * as Native from 'hitch-native';

export interface Unix {
  native: typeof Native;
}

let loading: Promise<Unix> | null = null;

export function loadUnix(): Promise<Unix> {
  loading ??= (async () => {
    if (process.platform === 'win32') throw new Error('control sockets need Unix-domain sockets with descriptor passing');
    const native = await import('hitch-native');
    // CommonJS: its exports may sit on `default`.
    const pick = <T>(m: T & { default?: T }): T => (m.default && typeof m.default === 'object' ? m.default : m);
    return { native: pick(native) };
  })();
  return loading;
}

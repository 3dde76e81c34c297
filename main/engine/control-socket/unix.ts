// The native pieces the control socket stands on, loaded on first use so that a machine where
// they did not build still runs Hitch (without control sockets, saying why): usocket (accepts
// connections and receives descriptors over SCM_RIGHTS) and hitch-native (peer credentials,
// close-on-exec, a terminal's size and modes; see native/hitch_native.c).
import type * as Native from 'hitch-native';
import type * as USocketModule from 'usocket';

export interface Unix {
  usocket: typeof USocketModule;
  native: typeof Native;
}

let loading: Promise<Unix> | null = null;

export function loadUnix(): Promise<Unix> {
  loading ??= (async () => {
    if (process.platform === 'win32') throw new Error('control sockets need Unix-domain sockets with descriptor passing');
    const usocket = await import('usocket');
    const native = await import('hitch-native');
    // Both are CommonJS: their exports may sit on `default`.
    const pick = <T>(m: T & { default?: T }): T => (m.default && typeof m.default === 'object' ? m.default : m);
    return { usocket: pick(usocket), native: pick(native) };
  })();
  return loading;
}

// The preload exposes exactly the API bridge and nothing else: no Node, no ipcRenderer.
// What `method` and `params` may be is checked in the main process by the router. Each page
// load is one client of the engine: its messages carry a random id of this load, so the main
// process gives it a connection of its own and lets go of the previous page's on a reload.
import { contextBridge, ipcRenderer } from 'electron';
import { CALL_CHANNEL, EVENT_CHANNEL, type HitchBridge } from './channels';
import { RpcClient } from './rpc-client';

const load = crypto.randomUUID();
const rpc = new RpcClient((message) => ipcRenderer.send(CALL_CHANNEL, load, message));
ipcRenderer.on(EVENT_CHANNEL, (_event, message: unknown) => rpc.receive(message));

const bridge: HitchBridge = {
  call: (method, params) => rpc.call(method, params),
  onEvent: (listener) => rpc.onEvent(listener),
};

contextBridge.exposeInMainWorld('hitch', bridge);

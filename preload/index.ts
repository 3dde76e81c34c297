// The preload exposes exactly the API bridge and nothing else: no Node, no ipcRenderer (the
// file browser's two local helpers are part of the bridge, preload/channels.ts DesktopFiles).
// What `method` and `params` may be is checked in the main process by the router. Each page
// load is one client of the engine: its messages carry a random id of this load, so the main
// process gives it a connection of its own and lets go of the previous page's on a reload.
import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { CALL_CHANNEL, CHOOSE_FOLDER_CHANNEL, EVENT_CHANNEL, type HitchBridge } from './channels';
import { RpcClient } from './rpc-client';

const load = crypto.randomUUID();
const rpc = new RpcClient((message) => ipcRenderer.send(CALL_CHANNEL, load, message));
ipcRenderer.on(EVENT_CHANNEL, (_event, message: unknown) => rpc.receive(message));

const bridge: HitchBridge = {
  call: (method, params) => rpc.call(method, params),
  onEvent: (listener) => rpc.onEvent(listener),
  // The file browser's local side: a dropped file's path, and a folder to download into.
  files: {
    pathForFile: (file) => webUtils.getPathForFile(file),
    chooseFolder: async () => {
      const folder: unknown = await ipcRenderer.invoke(CHOOSE_FOLDER_CHANNEL);
      return typeof folder === 'string' ? folder : null;
    },
  },
};

contextBridge.exposeInMainWorld('hitch', bridge);

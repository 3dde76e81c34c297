// The preload exposes exactly the API bridge and nothing else: no Node, no ipcRenderer.
// What `method` and `params` may be is checked in the main process by the router.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { CALL_CHANNEL, EVENT_CHANNEL, type EventMessage, type HitchBridge, type Reply } from './channels';

const bridge: HitchBridge = {
  call: (method: string, params: unknown): Promise<Reply> => ipcRenderer.invoke(CALL_CHANNEL, method, params),
  onEvent(listener: (event: EventMessage) => void): () => void {
    const handler = (_event: IpcRendererEvent, message: EventMessage): void => listener(message);
    ipcRenderer.on(EVENT_CHANNEL, handler);
    return () => ipcRenderer.removeListener(EVENT_CHANNEL, handler);
  },
};

contextBridge.exposeInMainWorld('hitch', bridge);

// What is worth a notification when a master changes: dropped, reconnected, MaxSessions
// reached, host key changed. A pure function of the previous and the new view, shared by the
// renderer (in-window notices) and the Electron shell (desktop notifications).
import type { MasterView } from './api';

export interface Notice {
  title: string;
  body: string;
  /** Warnings stay until dismissed; the rest fade. */
  level: 'info' | 'warning';
}

export function noticeFor(before: MasterView | undefined, after: MasterView): Notice | null {
  const name = after.id;
  if (after.error?.code === 'host-key-changed' && before?.error?.code !== 'host-key-changed') {
    return { title: 'Host key changed', body: after.error.message, level: 'warning' };
  }
  if (before?.state === 'ready' && after.state === 'reconnecting') {
    return { title: 'Connection dropped', body: `${name}: ${after.error?.message ?? 'the connection was lost'} Reconnecting…`, level: 'warning' };
  }
  if (before?.state === 'ready' && after.state === 'failed') {
    return { title: 'Connection dropped', body: `${name}: ${after.error?.message ?? 'the connection was lost.'}`, level: 'warning' };
  }
  if (before?.state === 'reconnecting' && after.state === 'ready') {
    return { title: 'Reconnected', body: `${name} is connected again.`, level: 'info' };
  }
  if ((before?.sessionLimit ?? null) === null && after.sessionLimit !== null) {
    return {
      title: 'MaxSessions reached',
      body: `${name} allows ${after.sessionLimit} sessions per connection; Hitch ${after.connections > 1 ? 'opened another connection' : 'may open another connection'}.`,
      level: 'info',
    };
  }
  return null;
}

// Drag and drop between hosts, tabs and the terminal area: what is dragged travels as a
// typed payload, so a drop knows whether it got a host or a session.
export const HOST_TYPE = 'application/x-hitch-host';
export const SESSION_TYPE = 'application/x-hitch-session';

export type Dragged = { hostId: string } | { sessionId: string };

export function startDrag(event: DragEvent, what: Dragged): void {
  if (!event.dataTransfer) return;
  if ('hostId' in what) event.dataTransfer.setData(HOST_TYPE, what.hostId);
  else event.dataTransfer.setData(SESSION_TYPE, what.sessionId);
  event.dataTransfer.effectAllowed = 'copy';
}

/** Whether a drag over an element carries something Hitch can open a session from. */
export function acceptsDrag(event: DragEvent): boolean {
  const types = event.dataTransfer?.types ?? [];
  return types.includes(HOST_TYPE) || types.includes(SESSION_TYPE);
}

export function dropped(event: DragEvent): Dragged | null {
  const host = event.dataTransfer?.getData(HOST_TYPE);
  if (host) return { hostId: host };
  const session = event.dataTransfer?.getData(SESSION_TYPE);
  return session ? { sessionId: session } : null;
}

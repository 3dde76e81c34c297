// One SFTP session per master, opened on first use on its ready connection and opened again
// after a reconnect (the old one ended with its connection). It takes one of the server's
// MaxSessions slots, counted like the process monitor's (MasterConnection.openSftp).
import type { HostMaster } from '../masters/host-master';
import type { MasterConnection } from '../masters/master';
import type { ClientChannel } from 'ssh2';
import type { Logger } from '../log';
import { widenWindow } from '../masters/ssh2-channels';
import { copyDataRepliesDirectly } from './sftp-data-replies';
import { CHUNK_BYTES, REQUESTS_IN_FLIGHT } from './pipeline';
import { SftpSession } from './sftp-session';

/** The SFTP channel's receive window: twice what a download keeps asked for, topped up at half. */
const SFTP_WINDOW = 2 * REQUESTS_IN_FLIGHT * CHUNK_BYTES;

export class SftpSessions {
  private readonly sessions = new Map<string, Promise<SftpSession>>();

  /**
   * `ownProcess`: the SFTP server's pid on the host (read from /proc/self), so the process
   * tree neither shows it nor takes it for a session's first process.
   */
  constructor(
    private readonly log: Logger,
    private readonly ownProcess: (master: HostMaster, connection: MasterConnection, pid: number) => void = () => undefined,
  ) {}

  /** The master's SFTP session, opened now if it has none that is open (the master must be connected or connectable). */
  async of(master: HostMaster, hostId: string): Promise<SftpSession> {
    const current = this.sessions.get(master.id);
    if (current) {
      const session = await current.catch(() => null);
      if (session?.isOpen) return session;
      if (this.sessions.get(master.id) !== current) return this.of(master, hostId); // another caller is opening it
    }
    const opening = master.openSftp().then(async ({ sftp, connection }) => {
      if (!copyDataRepliesDirectly(sftp)) this.log.warn('ssh2 changed inside: downloads take its slower path', { master: master.id });
      // After the line above: its push passes read replies by ssh2's, and this one must see them.
      widenWindow(sftp as unknown as ClientChannel, SFTP_WINDOW);
      const session = new SftpSession(sftp, hostId);
      const pid = Number(await session.readlink('/proc/self').catch(() => '')); // Linux hosts; elsewhere unknown
      if (Number.isSafeInteger(pid) && pid > 0) this.ownProcess(master, connection, pid);
      this.log.info('sftp session opened', { master: master.id, pid: pid || null });
      return session;
    });
    this.sessions.set(master.id, opening);
    opening.catch(() => {
      if (this.sessions.get(master.id) === opening) this.sessions.delete(master.id);
    });
    return opening;
  }

  /** Closes every session (the engine shuts down). */
  closeAll(): void {
    for (const s of this.sessions.values()) void s.then((session) => session.close(), () => undefined);
    this.sessions.clear();
  }
}

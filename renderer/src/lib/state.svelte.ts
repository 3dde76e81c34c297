// What the UI shows, derived from the engine: a snapshot at start, then events. The engine
// stays the owner; this is a read model the components render.
import type {
  BenchMethod,
  BenchReport,
  CatalogView,
  ForwardView,
  MasterView,
  ProcessView,
  PromptView,
  SessionView,
  SignalName,
  SignalOutcome,
  SettingsView,
  SignalScope,
  SshConfigInclude,
  SshConfigSnippet,
  Params,
  TransferView,
} from '../../../preload/api';
import { noticeFor, type Notice } from '../../../preload/notifications';

export interface BenchView {
  hostId: string;
  running: boolean;
  progress: { done: number; total: number; method: BenchMethod } | null;
  report: BenchReport | null;
  history: BenchReport[];
}
import { ApiError, type HitchClient } from '../../../preload/client';

/** sessionStorage: this page's client key and its tabs, which outlive a reload but not the page. */
const CLIENT_KEY = 'hitch.client';
const TABS_KEY = 'hitch.tabs';
/** In a window opened for one session: that session, once the window has made itself its own. */
const OWN_WINDOW_KEY = 'hitch.window';

/** The key this page names itself with to the engine; the same after a reload of this tab. */
function clientKey(): string {
  let key = sessionStorage.getItem(CLIENT_KEY);
  if (!key || !/^[A-Za-z0-9_-]{16,128}$/.test(key)) {
    const bytes = crypto.getRandomValues(new Uint8Array(18));
    key = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
    sessionStorage.setItem(CLIENT_KEY, key);
  }
  return key;
}

export class HitchState {
  catalog = $state<CatalogView | null>(null);
  masters = $state<Record<string, MasterView>>({});
  sessions = $state<SessionView[]>([]);
  /** Questions waiting for the person: the dialog shows the first. */
  prompts = $state<PromptView[]>([]);
  /** Remote processes per master, by pid, as the engine last reported them. */
  processes = $state<Record<string, Record<number, ProcessView>>>({});
  /** What the last signal did, per pid, shown beside the process tree. */
  outcomes = $state<SignalOutcome[]>([]);
  /** The benchmark panel, when open. */
  bench = $state<BenchView | null>(null);
  /** Port forwards of every master, by id, as the engine last reported them. */
  forwards = $state<Record<string, ForwardView>>({});
  /**
   * This page's tabs, in order: the sessions opened here, and those the person brought here
   * (from another window, the tray, or a stock client's session). Every other session of the
   * engine (other windows', `hitch exec` runs, every `git fetch` through "Use from ssh") is
   * listed under its host instead.
   */
  tabIds = $state<string[]>([]);
  tabs = $derived(this.tabIds.map((id) => this.sessions.find((s) => s.id === id)).filter((s): s is SessionView => s !== undefined));
  /** The session shown in the terminal area (its focused pane). */
  activeSessionId = $state<string | null>(null);
  /** The session in the second pane, when the terminal area is split. */
  splitSessionId = $state<string | null>(null);
  /** The host whose processes the panel shows when chosen by hand; else the active session's. */
  processHostId = $state<string | null>(null);
  settings = $state<SettingsView | null>(null);
  settingsOpen = $state(false);
  /** The "use from ssh" dialog (ssh_config snippet and Include). */
  shareOpen = $state(false);
  /** Notices about masters (dropped, reconnected, MaxSessions, host key changed), newest last. */
  notices = $state<(Notice & { id: number })[]>([]);
  private nextNotice = 1;
  /** The latest failed action, shown until dismissed. */
  notice = $state<string | null>(null);
  /** The latest completed action worth confirming. */
  info = $state<string | null>(null);
  engineLost = $state(false);
  /** File transfers under way and recently ended (the engine's queue), oldest first. */
  transfers = $state<TransferView[]>([]);
  /** The host whose files the file panel shows, while it is open. */
  filesHostId = $state<string | null>(null);

  constructor(readonly client: HitchClient) {
    client.on('catalog.changed', (catalog) => (this.catalog = catalog));
    client.on('master.changed', (master) => {
      const notice = noticeFor(this.masters[master.id], master);
      this.masters[master.id] = master;
      if (notice && this.settings?.notifications !== false) this.notify(notice);
    });
    client.on('settings.changed', (settings) => (this.settings = settings));
    client.on('ui.show-session', ({ sessionId }) => this.show(sessionId));
    client.on('prompt.opened', (prompt) => {
      if (!this.prompts.some((p) => p.id === prompt.id)) this.prompts.push(prompt);
    });
    client.on('prompt.closed', ({ promptId }) => (this.prompts = this.prompts.filter((p) => p.id !== promptId)));
    client.on('session.changed', (session) => this.upsertSession(session));
    client.on('session.removed', ({ sessionId }) => this.dropSession(sessionId));
    client.on('transport.closed', () => (this.engineLost = true));
    client.on('forward.changed', (forward) => (this.forwards[forward.id] = forward));
    client.on('forward.removed', ({ forwardId }) => delete this.forwards[forwardId]);
    // The network came back (or changed): connections that died meanwhile are found at once.
    window.addEventListener('online', () => void client.call('masters.probe', {}).catch(() => undefined));
    client.on('bench.progress', (p) => {
      if (this.bench?.hostId === p.hostId) this.bench.progress = { done: p.done, total: p.total, method: p.method };
    });
    client.on('transfer.changed', (transfer) => this.upsertTransfer(transfer));
    client.on('processes.changed', ({ masterId, upserted, removed }) => {
      const tree = (this.processes[masterId] ??= {});
      for (const p of upserted) tree[p.pid] = p;
      for (const pid of removed) delete tree[pid];
    });
  }

  async load(): Promise<void> {
    await this.attempt(async () => {
      // A window opened for one session (#session=s3) starts as a window of its own: the
      // opener's key and tabs, which the browser copied into it, are not its.
      const wanted = /^#session=(s\d+)$/.exec(location.hash)?.[1];
      if (wanted && sessionStorage.getItem(OWN_WINDOW_KEY) !== wanted) {
        sessionStorage.setItem(OWN_WINDOW_KEY, wanted);
        sessionStorage.removeItem(CLIENT_KEY);
        sessionStorage.setItem(TABS_KEY, '[]');
      }
      // A reload of this page takes back the sessions it held, and shows its tabs as they were.
      const { sessions: held } = await this.client.call('client.identify', { key: clientKey() });
      const snap = await this.client.call('state.get', { watch: true });
      this.catalog = snap.catalog;
      this.masters = Object.fromEntries(snap.masters.map((m) => [m.id, m]));
      for (const s of snap.sessions) this.upsertSession(s);
      this.prompts = snap.prompts;
      this.forwards = Object.fromEntries(snap.forwards.map((f) => [f.id, f]));
      for (const t of snap.transfers) this.upsertTransfer(t);
      const before = JSON.parse(sessionStorage.getItem(TABS_KEY) ?? '[]') as unknown;
      const restored = Array.isArray(before) ? before.filter((id): id is string => typeof id === 'string') : [];
      for (const id of [...restored, ...held.map((s) => s.id)]) if (this.sessions.some((s) => s.id === id)) this.show(id);
      if (wanted && this.sessions.some((s) => s.id === wanted)) this.show(wanted);
      const { settings, warning } = await this.client.call('settings.get', {});
      this.settings = settings;
      if (warning) this.notice = warning;
    });
  }

  private upsertSession(session: SessionView): void {
    const i = this.sessions.findIndex((s) => s.id === session.id);
    if (i >= 0) this.sessions[i] = session;
    else this.sessions.push(session);
  }

  /** A transfer as the engine last reported it (events and the snapshot arrive in the order the engine sent them). */
  upsertTransfer(transfer: TransferView): void {
    const i = this.transfers.findIndex((t) => t.id === transfer.id);
    if (i < 0) this.transfers.push(transfer);
    else this.transfers[i] = transfer;
  }

  cancelTransfer(transferId: string): Promise<unknown> {
    return this.attempt(() => this.client.call('transfer.cancel', { transferId }));
  }

  /** Shows a session in a tab here and brings it to the front (its terminal attaches to it). */
  show(sessionId: string): void {
    if (!this.tabIds.includes(sessionId)) {
      this.tabIds.push(sessionId);
      this.saveTabs();
    }
    this.activeSessionId = sessionId;
  }

  private saveTabs(): void {
    sessionStorage.setItem(TABS_KEY, JSON.stringify(this.tabIds));
  }

  /** Sessions on a master that are not tabs here: other windows', and `hitch exec` runs. */
  elsewhere(masterId: string): SessionView[] {
    return this.sessions.filter((s) => s.masterId === masterId && !s.external && !this.tabIds.includes(s.id));
  }

  private dropSession(sessionId: string): void {
    const i = this.sessions.findIndex((s) => s.id === sessionId);
    if (i < 0) return;
    const tab = this.tabs.findIndex((s) => s.id === sessionId);
    this.sessions.splice(i, 1);
    if (this.tabIds.includes(sessionId)) {
      this.tabIds = this.tabIds.filter((id) => id !== sessionId);
      this.saveTabs();
    }
    if (this.splitSessionId === sessionId) this.splitSessionId = null;
    if (this.activeSessionId === sessionId) this.activeSessionId = this.tabs[Math.max(0, tab - 1)]?.id ?? null;
    if (this.activeSessionId !== null && this.activeSessionId === this.splitSessionId) this.splitSessionId = null;
  }

  notify(notice: Notice): void {
    const id = this.nextNotice++;
    this.notices.push({ ...notice, id });
    if (notice.level === 'info') setTimeout(() => this.dismissNotice(id), 8000);
  }

  dismissNotice(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id);
  }

  async updateSettings(patch: Partial<SettingsView>): Promise<void> {
    const settings = await this.attempt(() => this.client.call('settings.update', { patch }));
    if (settings) this.settings = settings;
  }

  /** A favourite is kept warm: its master connects at start and after a wake when logging in needs nobody. */
  isWarm(hostId: string): boolean {
    return this.settings?.warmHosts.includes(hostId) ?? false;
  }

  async toggleWarm(hostId: string): Promise<void> {
    const warm = this.settings?.warmHosts ?? [];
    await this.updateSettings({ warmHosts: warm.includes(hostId) ? warm.filter((h) => h !== hostId) : [...warm, hostId] });
  }

  /** Another session on the same master as `sessionId` (or on `hostId`): no new login. */
  async openBeside(source: { sessionId?: string; hostId?: string }, where: 'tab' | 'split'): Promise<void> {
    const hostId = source.hostId ?? this.sessions.find((s) => s.id === source.sessionId)?.hostId;
    if (!hostId) return;
    const session = await this.attempt(() => this.client.call('session.open', { hostId, cols: 80, rows: 24 }));
    if (!session) return;
    this.upsertSession(session);
    if (where === 'split') {
      if (!this.tabIds.includes(session.id)) this.tabIds.push(session.id);
      this.saveTabs();
      this.splitSessionId = session.id;
    } else this.show(session.id);
  }

  /** A window showing this session (it reattaches with its scrollback); the same page, another view. */
  openInNewWindow(sessionId: string): void {
    window.open(`${location.pathname}#session=${encodeURIComponent(sessionId)}`, '_blank', 'popup=yes,width=960,height=640');
  }

  /** The `ssh -S` command that runs a stock client over this host's master. */
  sshCommand(hostId: string): string | null {
    const path = this.masterOf(hostId)?.controlPath;
    return path ? `ssh -S '${path.replace(/'/g, `'\\''`)}' ${hostId}` : null;
  }

  /** Runs a user action; a failure becomes the notice instead of an exception. */
  /** A master's forwards, oldest first. */
  forwardsOf(masterId: string): ForwardView[] {
    return Object.values(this.forwards)
      .filter((f) => f.masterId === masterId)
      .sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)));
  }

  /** Sets up a forward; its failure is thrown for the form to show beside it. */
  openForward(params: Params<'forwards.open'>): Promise<ForwardView> {
    return this.client.call('forwards.open', params);
  }

  cancelForward(forwardId: string): Promise<null | undefined> {
    return this.attempt(() => this.client.call('forwards.cancel', { forwardId }));
  }

  saveForward(forwardId: string, saved: boolean): Promise<ForwardView | undefined> {
    return this.attempt(() => this.client.call('forwards.save', { forwardId, saved }));
  }

  async attempt<T>(action: () => Promise<T>): Promise<T | undefined> {
    try {
      return await action();
    } catch (err) {
      this.notice = err instanceof ApiError ? err.message : String(err);
      return undefined;
    }
  }

  reload(): Promise<unknown> {
    return this.attempt(() => this.client.call('hosts.reload', {}));
  }

  connect(hostId: string): Promise<unknown> {
    return this.attempt(() => this.client.call('master.connect', { hostId }));
  }

  disconnect(hostId: string): Promise<unknown> {
    return this.attempt(() => this.client.call('master.disconnect', { hostId }));
  }

  async openSession(hostId: string): Promise<void> {
    const session = await this.attempt(() => this.client.call('session.open', { hostId, cols: 80, rows: 24 }));
    if (session) {
      this.upsertSession(session);
      this.show(session.id);
    }
  }

  /** The durable shells left running on a host (by an earlier Hitch, or detached), each in a tab again. */
  async reopenLeftRunning(hostId: string): Promise<void> {
    for (const shell of this.masterOf(hostId)?.leftRunning ?? []) {
      const session = await this.attempt(() => this.client.call('session.reopen', { hostId, name: shell.name, cols: 80, rows: 24 }));
      if (session) {
        this.upsertSession(session);
        this.show(session.id);
      }
    }
  }

  /** `pty`: run it in a terminal (interactive programs need one); without, it can be kept running. */
  async runCommand(hostId: string, command: string, pty = true): Promise<void> {
    const session = await this.attempt(() => this.client.call('session.exec', { hostId, command, cols: 80, rows: 24, pty }));
    if (session) {
      this.upsertSession(session);
      this.show(session.id);
    }
  }

  masterOf(hostId: string): MasterView | undefined {
    const masterId = this.catalog?.hosts.find((h) => h.id === hostId)?.masterId;
    return masterId ? this.masters[masterId] : undefined;
  }

  answerPrompt(promptId: string, answers: string[], remember: boolean, choice: 'once' | 'always' | null): Promise<unknown> {
    return this.attempt(() => this.client.call('prompt.answer', { promptId, answers, remember, choice }));
  }

  cancelPrompt(promptId: string): Promise<unknown> {
    return this.attempt(() => this.client.call('prompt.cancel', { promptId }));
  }

  async forgetSecrets(hostId: string): Promise<void> {
    const result = await this.attempt(() => this.client.call('secrets.forget', { hostId }));
    if (result) this.info = result.removed > 0 ? `Forgot ${result.removed} saved secret(s) for ${hostId}.` : `Nothing was saved for ${hostId}.`;
  }

  addHost(host: Record<string, unknown>): Promise<unknown> {
    return this.attempt(() => this.client.call('hosts.add', { host }));
  }

  sshConfigSnippet(): Promise<SshConfigSnippet | undefined> {
    return this.attempt(() => this.client.call('ssh-config.snippet', {}));
  }

  /** `apply: false` shows the change; only `apply: true` (an explicit click) makes it. */
  sshConfigInclude(apply: boolean): Promise<SshConfigInclude | undefined> {
    return this.attempt(() => this.client.call('ssh-config.include', { apply }));
  }

  updateHost(hostId: string, patch: Record<string, unknown>): Promise<unknown> {
    return this.attempt(() => this.client.call('hosts.update', { hostId, patch }));
  }

  removeHost(hostId: string): Promise<unknown> {
    return this.attempt(() => this.client.call('hosts.remove', { hostId }));
  }

  /** Loads the host's tree now and keeps it live: call again within three intervals to go on. */
  async watchProcesses(hostId: string, intervalMs: number): Promise<void> {
    try {
      const view = await this.client.call('processes.get', { hostId });
      this.processes[view.masterId] = Object.fromEntries(view.processes.map((p) => [p.pid, p]));
      await this.client.call('processes.watch', { hostId, intervalMs });
    } catch {
      // Not connected (yet): the panel says so; nothing to report as a failure.
    }
  }

  async signal(hostId: string, pid: number, signal: SignalName, scope: SignalScope): Promise<void> {
    const result = await this.attempt(() => this.client.call('processes.signal', { hostId, pid, signal, scope }));
    if (result) this.outcomes = result.outcomes;
  }

  async stopJob(hostId: string, pid: number, scope: SignalScope, graceMs: number): Promise<void> {
    const result = await this.attempt(() => this.client.call('processes.stop', { hostId, pid, scope, graceMs }));
    if (result) this.outcomes = result.outcomes;
  }

  async openBench(hostId: string): Promise<void> {
    this.bench = { hostId, running: false, progress: null, report: null, history: [] };
    const history = await this.attempt(() => this.client.call('bench.history', { hostId }));
    if (history && this.bench?.hostId === hostId) {
      this.bench.history = history.reports;
      this.bench.report = history.reports.at(-1) ?? null;
    }
  }

  async runBench(rounds: number): Promise<void> {
    const bench = this.bench;
    if (!bench || bench.running) return;
    bench.running = true;
    bench.progress = null;
    try {
      const report = await this.attempt(() => this.client.call('bench.run', { hostId: bench.hostId, rounds }));
      if (report) {
        bench.report = report;
        bench.history = [...bench.history, report];
      }
    } finally {
      bench.running = false;
    }
  }

  cancelBench(): Promise<unknown> {
    const hostId = this.bench?.hostId;
    return hostId ? this.attempt(() => this.client.call('bench.cancel', { hostId })) : Promise.resolve();
  }

  /** The history as a file the browser saves. */
  async exportBench(format: 'json' | 'csv'): Promise<void> {
    const hostId = this.bench?.hostId;
    if (!hostId) return;
    const file = await this.attempt(() => this.client.call('bench.export', { hostId, format }));
    if (!file) return;
    const url = URL.createObjectURL(new Blob([file.text], { type: file.mime }));
    const a = Object.assign(document.createElement('a'), { href: url, download: file.filename });
    a.click();
    URL.revokeObjectURL(url);
  }

  /** `keep`: leave a command without a terminal running; it then shows as detached. */
  closeSession(sessionId: string, keep = false): Promise<unknown> {
    return this.attempt(() => this.client.call('session.close', { sessionId, ...(keep ? { keep } : {}) }));
  }

  sessionsOf(hostId: string): SessionView[] {
    return this.sessions.filter((s) => s.hostId === hostId);
  }
}

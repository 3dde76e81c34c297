// The commands that ask the engine one thing and print the answer. Each takes the context
// and its positionals, prints through ctx.print (JSON checked against its schema, or text),
// and returns hitch's exit status.
import { elapsed, processGroups } from '../../preload/process-groups';
import { SIGNAL_NAMES, type ForwardView, type MasterView, type SignalName, type Snapshot } from '../../preload/api';
import { listenText, matchesSpec, parseForwardSpec, targetText, type ParsedForward } from '../../preload/forward-spec';
import { CliError, USAGE_STATUS, type Context } from './context';
import { mastersOf, withPrompts } from './prompts';
import type { Output } from './schemas';


export interface CommandOptions {
  signal?: string | undefined;
  tree?: boolean | undefined;
  session?: boolean | undefined;
  grace?: string | undefined;
  rounds?: string | undefined;
}

function table(rows: string[][], indent = ''): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

function sessionsText(m: Pick<MasterView, 'sessions' | 'sessionLimit'>): string {
  return `${m.sessions}/${m.sessionLimit ?? '?'}`;
}

/** `not-connected` failures say how to connect. */
function withHint<T>(host: string, work: Promise<T>): Promise<T> {
  return work.catch((err: unknown) => {
    if (err instanceof CliError && err.code === 'not-connected') throw new CliError(`${err.message} Connect it first: hitch connect ${host}`, 1, err.code);
    throw err;
  });
}

function snapshotHost(state: Snapshot, host: string): Snapshot['catalog']['hosts'][number] {
  const view = state.catalog.hosts.find((h) => h.id === host);
  if (!view) throw new CliError(`no host "${host}" in ${state.catalog.configPath} or in Hitch.`);
  return view;
}

export async function ls(ctx: Context): Promise<number> {
  const state = await ctx.call('state.get', {});
  const value: Output<'ls'> = { hosts: state.catalog.hosts, masters: state.masters, sessions: state.sessions };
  await ctx.print('ls', value, (v) => {
    const hostsOf = (masterId: string): string =>
      v.hosts
        .filter((h) => h.masterId === masterId)
        .map((h) => h.id)
        .join(',');
    const out = ['HOSTS'];
    out.push(v.hosts.length ? table(v.hosts.map((h) => [h.id, h.error ? `error: ${h.error}` : `${h.user}@${h.hostname}:${h.port}`]), '  ') : '  (none)');
    out.push('MASTERS');
    out.push(
      v.masters.length
        ? table(
            v.masters.map((m) => [m.id, m.state, `sessions ${sessionsText(m)}`, `connections ${m.connections}`, hostsOf(m.id) || '-']),
            '  ',
          )
        : '  (none)',
    );
    out.push('SESSIONS');
    out.push(
      v.sessions.length
        ? table(
            v.sessions.map((s) => [s.id, s.hostId, s.kind, s.state, s.command ?? (s.kind === 'shell' ? '(shell)' : '')]),
            '  ',
          )
        : '  (none)',
    );
    return out.join('\n');
  });
  return 0;
}

export async function connect(ctx: Context, host: string): Promise<number> {
  const state = await ctx.call('state.get', {});
  snapshotHost(state, host);
  const master = await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => ctx.call('master.connect', { hostId: host }));
  await ctx.print('connect', { host, master }, (v) => `${host}: ${v.master.state} (${v.master.id}${v.master.authMethod ? `, ${v.master.authMethod}` : ''})`);
  return 0;
}

export async function disconnect(ctx: Context, host: string): Promise<number> {
  const state = await ctx.call('state.get', {});
  const masterId = snapshotHost(state, host).masterId;
  await ctx.call('master.disconnect', { hostId: host });
  await ctx.print('disconnect', { host, masterId, disconnected: true }, () => `${host}: disconnected`);
  return 0;
}

export async function ps(ctx: Context, host: string): Promise<number> {
  const tree = await withHint(host, ctx.call('processes.get', { hostId: host }));
  const state = await ctx.call('state.get', {});
  const sessions = state.sessions.filter((s) => s.masterId === tree.masterId && s.state === 'open');
  const hidden = state.masters.find((m) => m.id === tree.masterId)?.processesHidden ?? null;
  const groups: Output<'ps'>['groups'] = processGroups(tree.processes, sessions).map((g) => ({
    kind: g.kind,
    sessionId: g.sessionId,
    title: g.sessionId ? `${g.sessionId} ${g.title}` : g.title,
    processes: g.rows.map(({ process, depth }) => ({ ...process, depth })),
  }));
  await ctx.print('ps', { host, masterId: tree.masterId, groups }, (v) => {
    const out = [`${host} (${v.masterId})`];
    for (const g of v.groups) {
      if (g.kind !== 'session' && g.processes.length === 0) continue;
      out.push(g.title);
      if (g.processes.length === 0) {
        out.push('  (no processes yet)');
        continue;
      }
      const header = ['PID', 'PPID', 'USER', 'STAT', '%CPU', 'RSS', 'TIME', 'COMMAND'];
      const rows = g.processes.map((p) => [
        String(p.pid),
        String(p.ppid),
        p.user,
        p.state,
        p.cpu.toFixed(1),
        String(p.rssKb),
        elapsed(p.startedAt, Date.now()),
        '  '.repeat(p.depth) + p.command,
      ]);
      out.push(table([header, ...rows], '  '));
    }
    if (hidden) out.push(hidden);
    return out.join('\n');
  });
  return 0;
}

export async function kill(ctx: Context, host: string, pidText: string, opts: CommandOptions): Promise<number> {
  const pid = Number(pidText);
  if (!/^\d+$/.test(pidText) || !Number.isSafeInteger(pid) || pid < 2) throw new CliError(`"${pidText}" is not a process id`, USAGE_STATUS);
  const name = (opts.signal ?? 'TERM').toUpperCase().replace(/^SIG/, '');
  if (!(SIGNAL_NAMES as readonly string[]).includes(name)) throw new CliError(`--signal: "${opts.signal}" is not one of ${SIGNAL_NAMES.join(' ')}`, USAGE_STATUS);
  const signal = name as SignalName;
  if (opts.tree && opts.session) throw new CliError('--tree and --session cannot be combined', USAGE_STATUS);
  const scope = opts.tree ? 'tree' : opts.session ? 'session' : 'process';
  let graceSeconds: number | null = null;
  if (opts.grace !== undefined) {
    graceSeconds = Number(opts.grace);
    if (opts.grace.trim() === '' || !Number.isFinite(graceSeconds) || graceSeconds < 0 || graceSeconds > 600) {
      throw new CliError(`--grace: "${opts.grace}" is not a number of seconds (0 to 600)`, USAGE_STATUS);
    }
    if (signal !== 'TERM') throw new CliError('--grace sends TERM, then KILL after the grace period: it does not combine with --signal', USAGE_STATUS);
  }
  const { outcomes } = await withHint(
    host,
    graceSeconds === null
      ? ctx.call('processes.signal', { hostId: host, pid, signal, scope })
      : ctx.call('processes.stop', { hostId: host, pid, scope, graceMs: Math.round(graceSeconds * 1000) }),
  );
  // A plain signal succeeded once delivered (a process may well live on after STOP or USR1);
  // a stop succeeded once everything is gone.
  const delivered = (o: (typeof outcomes)[number]): boolean =>
    o.outcome === 'gone' || o.outcome === 'killed' || (graceSeconds === null && o.outcome === 'alive');
  const ok = outcomes.length > 0 && outcomes.every(delivered);
  await ctx.print('kill', { host, pid, signal, scope, graceSeconds, outcomes, ok }, (v) => table(v.outcomes.map((o) => [String(o.pid), o.outcome])));
  if (!ok) process.stderr.write(`hitch: not every process took ${signal}: ${outcomes.filter((o) => !delivered(o)).map((o) => `${o.pid} ${o.outcome}`).join(', ')}\n`);
  return ok ? 0 : 1;
}

export async function sessions(ctx: Context, host: string): Promise<number> {
  const state = await ctx.call('state.get', {});
  const masterId = snapshotHost(state, host).masterId;
  const master = state.masters.find((m) => m.id === masterId);
  const rows: Output<'sessions'>['sessions'] = state.sessions
    .filter((s) => s.hostId === host && !s.external)
    .map((s) => ({
      id: s.id,
      kind: s.kind,
      durable: s.durable,
      state: s.state === 'open' && s.reconnecting ? 'reconnecting' : s.state,
      rootPid: s.rootPid,
      command: s.command,
    }));
  for (const shell of master?.leftRunning ?? []) rows.push({ id: shell.name, kind: 'shell', durable: true, state: 'detached', rootPid: shell.pid, command: null });
  await ctx.print('sessions', { host, sessions: rows }, (v) =>
    v.sessions.length === 0
      ? `${host}: no sessions`
      : table([['ID', 'KIND', 'DURABLE', 'STATE', 'PID', 'COMMAND'], ...v.sessions.map((s) => [s.id, s.kind, s.durable ? 'yes' : 'no', s.state, s.rootPid === null ? '-' : String(s.rootPid), s.command ?? ''])]),
  );
  return 0;
}

export async function socket(ctx: Context, host: string): Promise<number> {
  const state = await ctx.call('state.get', {});
  const masterId = snapshotHost(state, host).masterId;
  const master = state.masters.find((m) => m.id === masterId);
  if (!masterId || !master || master.state !== 'ready') throw new CliError(`${host} is not connected. Connect it first: hitch connect ${host}`);
  if (!master.controlPath) {
    throw new CliError(`the master of ${host} (${master.id}) serves no OpenSSH control socket: this engine does not offer one for it.`);
  }
  await ctx.print('socket', { host, masterId, controlPath: master.controlPath }, (v) => v.controlPath);
  return 0;
}

export async function bench(ctx: Context, host: string, opts: CommandOptions): Promise<number> {
  const rounds = opts.rounds === undefined ? 20 : Number(opts.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 500) throw new CliError(`--rounds: "${opts.rounds}" is not a whole number from 1 to 500`, USAGE_STATUS);
  // Watching the state brings the benchmark's progress events.
  const state = await ctx.call('state.get', { watch: true });
  snapshotHost(state, host);
  const showProgress = !ctx.json && process.stderr.isTTY === true;
  const off = (await ctx.client()).on('bench.progress', ({ hostId, done, total, method }) => {
    if (showProgress && hostId === host) process.stderr.write(`\r\x1b[K${method} ${done}/${total}`);
  });
  let report: Output<'bench'>;
  try {
    report = await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => ctx.call('bench.run', { hostId: host, rounds }));
  } finally {
    off();
    if (showProgress) process.stderr.write('\r\x1b[K');
  }
  await ctx.print('bench', report, (r) => {
    const rows = r.results.map((x) => [x.method, `${x.median_ms.toFixed(2)} ms`, `p95 ${x.p95_ms.toFixed(2)} ms`, x.ratio === null ? '' : `×${x.ratio.toFixed(2)}`]);
    const out = [`${host}: ${r.rounds} rounds`, table([['METHOD', 'MEDIAN', 'P95', 'VS FRESH'], ...rows], '  ')];
    for (const s of r.skipped) out.push(`  skipped ${s.method}: ${s.reason}`);
    return out.join('\n');
  });
  return 0;
}

export interface ForwardOptions {
  L?: string[] | undefined;
  R?: string[] | undefined;
  D?: string[] | undefined;
  list?: boolean | undefined;
  cancel?: boolean | undefined;
  save?: boolean | undefined;
}

function forwardRows(forwards: ForwardView[]): string {
  if (forwards.length === 0) return '';
  const bytes = (f: ForwardView): string => `${f.bytesIn}/${f.bytesOut}`;
  return table([
    ['ID', 'KIND', 'LISTEN', 'TARGET', 'STATE', 'CONNECTIONS', 'BYTES IN/OUT', 'SAVED', 'ORIGIN'],
    ...forwards.map((f) => [
      f.id,
      f.kind,
      listenText(f),
      targetText(f),
      f.error ? `${f.state}: ${f.error}` : f.state,
      `${f.connections}/${f.totalConnections}`,
      bytes(f),
      f.saved ? 'yes' : 'no',
      f.origin,
    ]),
  ]);
}

/** The line ssh prints for a forward set up: `Allocated port N…` for -R 0, as ssh does. */
function openedLine(f: ForwardView): string {
  if (f.kind === 'remote' && f.listenPort === 0) return `Allocated port ${f.boundPort} for remote forward to ${targetText(f)}`;
  const what = f.kind === 'dynamic' ? `SOCKS proxy on ${listenText(f)}` : `${f.kind === 'local' ? 'local' : 'remote'} forward ${listenText(f)} -> ${targetText(f)}`;
  return `${f.id}: ${what}${f.saved ? ' (saved)' : ''}`;
}

/**
 * `hitch forward HOST -L|-R|-D SPEC... [--save]`, `--list`, `--cancel ID|-L SPEC...`. The
 * forwards live in the engine after the command exits.
 */
export async function forward(ctx: Context, host: string, id: string | undefined, opts: ForwardOptions): Promise<number> {
  const specs: ParsedForward[] = [];
  try {
    for (const [kind, list] of [['local', opts.L], ['remote', opts.R], ['dynamic', opts.D]] as const) for (const s of list ?? []) specs.push(parseForwardSpec(kind, s));
  } catch (err) {
    throw new CliError((err as Error).message, USAGE_STATUS);
  }
  const print = (forwards: ForwardView[], human: (v: Output<'forward'>) => string): Promise<void> => ctx.print('forward', { host, forwards }, human);
  if (opts.list) {
    if (opts.cancel || opts.save || specs.length > 0 || id !== undefined) throw new CliError('--list takes no forward specs, --cancel or --save', USAGE_STATUS);
    const { forwards } = await ctx.call('forwards.list', { hostId: host });
    await print(forwards, (v) => forwardRows(v.forwards) || `${host}: no forwards`);
    return 0;
  }
  if (opts.cancel) {
    if (opts.save) throw new CliError('--cancel and --save cannot be combined', USAGE_STATUS);
    if ((id === undefined) === (specs.length === 0)) throw new CliError('--cancel takes one forward id (hitch forward HOST --list shows them) or the -L/-R/-D specs it was opened with', USAGE_STATUS);
    if (id !== undefined && !/^f[1-9][0-9]{0,9}$/.test(id)) throw new CliError(`"${id}" is not a forward id (f1, f2…: hitch forward ${host} --list shows them)`, USAGE_STATUS);
    const { forwards } = await ctx.call('forwards.list', { hostId: host });
    const chosen: ForwardView[] = [];
    if (id !== undefined) {
      const f = forwards.find((x) => x.id === id);
      if (!f) throw new CliError(`${host} has no forward ${id} (hitch forward ${host} --list shows them)`);
      chosen.push(f);
    }
    for (const [i, spec] of specs.entries()) {
      const f = forwards.find((x) => matchesSpec(x, spec) && !chosen.includes(x));
      if (!f) throw new CliError(`${host} has no forward ${[...(opts.L ?? []).map((s) => `-L ${s}`), ...(opts.R ?? []).map((s) => `-R ${s}`), ...(opts.D ?? []).map((s) => `-D ${s}`)][i]}`);
      chosen.push(f);
    }
    for (const f of chosen) await ctx.call('forwards.cancel', { forwardId: f.id });
    await print(chosen, (v) => v.forwards.map((f) => `${f.id}: cancelled`).join('\n'));
    return 0;
  }
  if (id !== undefined) throw new CliError(`unexpected "${id}": usage: hitch forward HOST -L|-R|-D SPEC [--save], --list, or --cancel ID`, USAGE_STATUS);
  if (specs.length === 0) throw new CliError(`forward needs -L, -R or -D (or --list, --cancel): hitch forward ${host} -L 8080:localhost:80`, USAGE_STATUS);
  const state = await ctx.call('state.get', {});
  snapshotHost(state, host);
  const before = new Set(state.forwards.map((f) => f.id));
  const opened: ForwardView[] = [];
  try {
    for (const spec of specs) {
      const params = {
        hostId: host,
        kind: spec.kind,
        bindAddress: spec.bindAddress,
        listenPort: spec.listenPort,
        ...(spec.connectHost !== null ? { connectHost: spec.connectHost, connectPort: spec.connectPort! } : {}),
        ...(opts.save ? { save: true } : {}),
      };
      opened.push(await withPrompts(ctx, mastersOf(state.catalog, host), state.prompts, () => ctx.call('forwards.open', params)));
    }
  } catch (err) {
    // All or nothing: the ones this command set up go again (never one that was there before).
    for (const f of opened) if (!before.has(f.id)) await ctx.call('forwards.cancel', { forwardId: f.id }).catch(() => undefined);
    throw err;
  }
  await print(opened, (v) => v.forwards.map(openedLine).join('\n'));
  return 0;
}

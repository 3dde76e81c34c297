// A flood in a terminal, as a person sees it (issue #14): `seq 1 2000000` (14 MB) typed into
// a shell tab of the web host's page in Chromium, at 50 ms RTT through a delaying TCP proxy to
// a real sshd, with the app's defaults (shells durable where the host has tmux). Measured:
// - ui_ms: from the Enter key to the line after the flood drawn in the terminal;
// - frame_p99_ms: the page's animation frames during the flood (requestAnimationFrame
//   intervals, p99): how long the UI can freeze;
// - engine_rss_mb: the web host process's (engine included) peak RSS during the flood;
// - bytes: what seq writes (the terminal also gets a carriage return before each newline).
// Runs the built app (out/: `npx electron-vite build`). Alone: `npx tsx bench/flood.ts [--lines N]
// [--rtt MS] [--rounds N] [--out DIR] [--plain]` (DIR: another build of the app, to compare;
// --plain: shells not durable).
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import WebSocket from 'ws';
import type { Snapshot } from '../preload/api';
import { CHROMIUM } from '../playwright.config';
import { spawnWebHost } from '../tests/fixtures/web-host-process';
import { startSshd, type Sshd } from '../tests/fixtures/sshd';
import { behindProxy, startProxy } from '../tests/fixtures/tcp-proxy';

export interface FloodResult {
  bytes: number;
  ui_ms: number;
  frame_p99_ms: number;
  engine_rss_mb: number;
}

/** Bytes `seq 1 N` writes: every number's digits and a newline. */
function seqBytes(lines: number): number {
  let bytes = 0;
  for (let digits = 1, from = 1; from <= lines; digits++, from *= 10) bytes += (Math.min(lines, from * 10 - 1) - from + 1) * (digits + 1);
  return bytes;
}

/** The web host as `npm run web` starts it, on its own data and runtime directories (never a running engine). */
async function startWebHost(dir: string, sshConfig: string, out: string, durable: boolean): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const configPath = join(dir, 'ssh_config');
  await writeFile(configPath, sshConfig);
  if (!durable) {
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'data/settings.json'), JSON.stringify({ version: 1, settings: { durableShells: false } }));
  }
  const host = await spawnWebHost(join(out, 'main/web.js'), ['--ssh-config', configPath, '--data-dir', join(dir, 'data'), '--runtime-dir', join(dir, 'run')]);
  return { url: host.url, pid: host.child.pid!, stop: host.stop };
}

/** Resolves once the engine behind `url` has no open session (a durable shell's end is tmux's answer to its kill). */
async function noOpenSessions(url: string): Promise<void> {
  const { host, searchParams } = new URL(url);
  const ws = new WebSocket(`ws://${host}/api?token=${searchParams.get('token')}`, { headers: { origin: `http://${host}` } });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  try {
    for (let id = 1, deadline = Date.now() + 30_000; ; id++) {
      const reply = new Promise<{ result: Snapshot }>((resolve) => ws.once('message', (raw) => resolve(JSON.parse(String(raw)))));
      ws.send(JSON.stringify({ id, method: 'state.get', params: {} }));
      if (!(await reply).result.sessions.some((s) => s.state === 'open')) return;
      if (Date.now() > deadline) throw new Error('a flood shell did not end');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    ws.close();
  }
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}

/**
 * In the page: when Enter goes down, every animation frame after it, and when the marker is
 * drawn. Plain JavaScript text: a compiled function could call helpers the page does not have.
 */
const INSTRUMENT = `(marker) => {
  const flood = (window.flood = { enter: 0, frames: [], drawn: 0 });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || flood.enter) return;
    flood.enter = performance.now();
    const frame = (at) => {
      flood.frames.push(at);
      if (!flood.drawn) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }, { capture: true });
  const rows = document.querySelector('.term-pane.active .xterm-rows');
  new MutationObserver((_, observer) => {
    if (!rows.textContent.includes(marker)) return;
    flood.drawn = performance.now();
    observer.disconnect();
  }).observe(rows, { childList: true, subtree: true, characterData: true });
}`;

/**
 * One flood per round in a new shell tab; ui_ms is the median of the rounds, frame_p99_ms
 * pools every round's frames, engine_rss_mb is the highest seen. `out` is the built app.
 */
export async function floodBench(sshd: Sshd, opts: { rtt: number; lines: number; rounds: number; out?: string; durable?: boolean }): Promise<FloodResult> {
  const out = resolve(opts.out ?? 'out');
  const dir = await mkdtemp(join(tmpdir(), 'hitch-bench-flood-'));
  const proxy = await startProxy({ targetPort: sshd.port, delayMs: opts.rtt / 2 });
  const host = await startWebHost(dir, await behindProxy(sshd, proxy, 'flood'), out, opts.durable ?? true);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const uiMs: number[] = [];
  const frames: number[] = [];
  let peakRss = 0;
  try {
    process.stderr.write(`flood: seq 1 ${opts.lines} in a shell tab in Chromium at ${opts.rtt} ms RTT, ${opts.rounds} round(s)…\n`);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    if (process.env.FLOOD_DEBUG) page.on('console', (m) => process.stderr.write(`${Math.round(performance.now())} ${m.text()}\n`));
    await page.goto(host.url);
    for (let round = 0; round < opts.rounds; round++) {
      await page.locator('li[data-host="flood"]').getByRole('button', { name: 'New shell' }).click();
      await page.getByRole('tab').first().waitFor();
      const rows = page.locator('.term-pane.active .xterm-rows');
      await rows.filter({ hasText: /\$ *$/ }).waitFor({ timeout: 30_000 });
      // The marker is printed by the shell after seq; the command line shows it split by quotes.
      const marker = `flood-${round}-done`;
      await page.evaluate(`(${INSTRUMENT})(${JSON.stringify(marker)})`);
      await page.locator('.term-pane.active').click();
      await page.keyboard.type(`seq 1 ${opts.lines}; echo flood-${round}-"done"`);
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peakRss = Math.max(peakRss, await rssMb(host.pid));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await page.keyboard.press('Enter');
      // Polled from here: the page's CSP allows no eval, which waitForFunction needs.
      for (const deadline = Date.now() + 120_000; !((await page.evaluate('window.flood.drawn')) as number); ) {
        if (Date.now() > deadline) throw new Error('the flood never ended in the terminal');
        await new Promise((r) => setTimeout(r, 100));
      }
      sampling = false;
      await sampler;
      const seen = (await page.evaluate('window.flood')) as { enter: number; frames: number[]; drawn: number };
      uiMs.push(seen.drawn - seen.enter);
      const at = seen.frames.filter((t) => t <= seen.drawn);
      for (let i = 1; i < at.length; i++) frames.push(at[i]! - at[i - 1]!);
      // Closing the tab ends the shell on the host too (a durable one is not left in tmux).
      await page.locator('button.close').first().click();
      await page.getByRole('tab').first().waitFor({ state: 'detached' });
      await noOpenSessions(host.url);
    }
  } finally {
    await browser.close();
    await host.stop();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
  const pick = (xs: number[], q: number): number => sorted(xs)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;
  const round1 = (x: number): number => Math.round(x * 10) / 10;
  return { bytes: seqBytes(opts.lines), ui_ms: round1(pick(uiMs, 0.5)), frame_p99_ms: round1(pick(frames, 0.99)), engine_rss_mb: Math.round(peakRss) };
}

// Alone: `tsx bench/flood.ts`, with an sshd of its own.
async function alone(): Promise<void> {
  const { values } = parseArgs({
    options: { lines: { type: 'string', default: '2000000' }, rtt: { type: 'string', default: '50' }, rounds: { type: 'string', default: '1' }, out: { type: 'string' }, plain: { type: 'boolean', default: false } },
  });
  const sshd = await startSshd();
  try {
    const result = await floodBench(sshd, { rtt: Number(values.rtt), lines: Number(values.lines), rounds: Number(values.rounds), out: values.out, durable: !values.plain });
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await sshd.stop();
  }
}

if (/bench[/\\]flood\.ts$/.test(process.argv[1] ?? '')) {
  alone().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}

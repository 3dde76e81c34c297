// Questions the engine needs a person for (a password, an OTP code, an unknown host key),
// asked on the terminal while a command waits for them; secrets are never echoed. Without a
// terminal, or with --batch, the question is cancelled and the command fails saying why.
import type { ReadStream } from 'node:tty';
import type { CatalogView, PromptView } from '../../preload/api';
import { CliError, type Context } from './context';
import { safeForTerminal } from './terminal-text';

/** The masters a host's connection goes through: its own and its ProxyJump hops'. */
export function mastersOf(catalog: CatalogView, hostId: string): Set<string> {
  const ids = new Set<string>();
  const host = catalog.hosts.find((h) => h.id === hostId);
  if (host?.masterId) ids.add(host.masterId);
  for (const hop of host?.proxyJump?.split(',') ?? []) {
    const id = catalog.hosts.find((h) => h.id === hop.trim())?.masterId;
    if (id) ids.add(id);
  }
  return ids;
}

/**
 * Asks `question` and reads one line from the terminal in raw mode; null when the person
 * cancels (Ctrl-C, Ctrl-D). Raw mode comes first: an answer typed (or pasted) the moment the
 * question shows must not be echoed by the terminal.
 */
function readLine(question: string, secret: boolean, abort: AbortSignal): Promise<string | null> {
  const stdin = process.stdin as ReadStream;
  return new Promise((resolve) => {
    let value = '';
    const finish = (result: string | null): void => {
      stdin.off('data', onData);
      abort.removeEventListener('abort', onAbort);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      resolve(result);
    };
    const onAbort = (): void => finish(null);
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish(value);
        if (ch === '\x03' || (ch === '\x04' && value === '')) return finish(null);
        if (ch === '\x7f' || ch === '\b') {
          if (value === '') continue;
          value = [...value].slice(0, -1).join('');
          if (!secret) process.stderr.write('\b \b');
        } else if (ch === '\x15') {
          if (!secret) process.stderr.write('\b \b'.repeat([...value].length));
          value = '';
        } else if (ch >= ' ') {
          value += ch;
          if (!secret) process.stderr.write(ch);
        }
      }
    };
    stdin.setRawMode(true);
    process.stderr.write(question);
    stdin.on('data', onData);
    stdin.resume();
    abort.addEventListener('abort', onAbort);
  });
}

function ask(question: string, secret: boolean, abort: AbortSignal): Promise<string | null> {
  return readLine(question, secret, abort);
}

/** Whether questions can be asked on this terminal (stdin a TTY, not --batch). */
export function canAskPerson(ctx: Pick<Context, 'batch'>): boolean {
  return !ctx.batch && process.stdin.isTTY === true && typeof (process.stdin as ReadStream).setRawMode === 'function';
}

/** A yes/no question on the terminal (see canAskPerson); only y or yes is a yes. */
export async function confirm(question: string): Promise<boolean> {
  const reply = await readLine(question, false, new AbortController().signal);
  return /^y(es)?$/i.test(reply?.trim() ?? '');
}

type Answer = { answers: string[]; remember: boolean; choice: 'once' | 'always' | null } | null;

/** Asks one prompt on the terminal; null when declined. */
async function askPerson(prompt: PromptView, abort: AbortSignal): Promise<Answer> {
  // Titles, messages and labels carry what the server sent (keyboard-interactive).
  process.stderr.write(safeForTerminal(`\n${prompt.title}\n${prompt.message ? prompt.message + '\n' : ''}`));
  if (prompt.kind === 'host-key') {
    const reply = (await ask('Accept this host key? [o]nce, [a]lways (remember it), [N]o: ', false, abort))?.trim().toLowerCase();
    if (reply === 'o' || reply === 'once') return { answers: [], remember: false, choice: 'once' };
    if (reply === 'a' || reply === 'always') return { answers: [], remember: false, choice: 'always' };
    return null;
  }
  if (prompt.kind === 'extra-connection') {
    const reply = (await ask('Open another connection? [y/N]: ', false, abort))?.trim().toLowerCase();
    return reply === 'y' || reply === 'yes' ? { answers: [], remember: false, choice: 'once' } : null;
  }
  const answers: string[] = [];
  for (const field of prompt.fields) {
    const label = safeForTerminal(field.label.trim());
    const answer = await ask(/[:?]$/.test(label) ? `${label} ` : `${label}: `, field.secret, abort);
    if (answer === null) return null;
    answers.push(answer);
  }
  let remember = false;
  if (prompt.canRemember) {
    const reply = await ask('Remember in the OS keychain? [y/N]: ', false, abort);
    if (reply === null) return null;
    remember = /^y(es)?$/i.test(reply.trim());
  }
  return { answers, remember, choice: null };
}

/**
 * Answers the prompts of `masters` while `work` runs. When a prompt cannot be asked, it is
 * cancelled, and the failure `work` then meets is reported as that reason instead.
 */
export async function withPrompts<T>(ctx: Context, masters: Set<string>, open: PromptView[], work: () => Promise<T>): Promise<T> {
  const client = await ctx.client();
  const canAsk = canAskPerson(ctx);
  let refusal: string | null = null;
  const closed = new Map<string, AbortController>();
  let queue: Promise<void> = Promise.resolve();

  const handle = (prompt: PromptView): void => {
    if (!masters.has(prompt.masterId)) return;
    if (!canAsk) {
      const why = ctx.batch ? '--batch' : 'no terminal';
      refusal = `${safeForTerminal(prompt.title)}: ${prompt.kind === 'host-key' ? 'the host key must be accepted' : 'this needs a person to answer'}, and there is nobody to ask (${why}). Log in once from the app or from \`hitch\` in a terminal.`;
      void client.call('prompt.cancel', { promptId: prompt.id }).catch(() => undefined);
      return;
    }
    const abort = new AbortController();
    closed.set(prompt.id, abort);
    // One question at a time on the terminal.
    queue = queue.then(async () => {
      if (abort.signal.aborted) return;
      const answer = await askPerson(prompt, abort.signal);
      if (abort.signal.aborted) {
        process.stderr.write('(answered elsewhere)\n');
        return;
      }
      closed.delete(prompt.id);
      try {
        if (answer) await client.call('prompt.answer', { promptId: prompt.id, ...answer });
        else await client.call('prompt.cancel', { promptId: prompt.id });
      } catch (err) {
        process.stderr.write(`hitch: ${(err as Error).message}\n`);
      }
    });
  };

  const offOpened = client.on('prompt.opened', handle);
  const offClosed = client.on('prompt.closed', ({ promptId }) => closed.get(promptId)?.abort());
  for (const prompt of open) handle(prompt);
  try {
    return await work();
  } catch (err) {
    if (refusal) throw new CliError(refusal);
    throw err;
  } finally {
    offOpened();
    offClosed();
    for (const abort of closed.values()) abort.abort();
  }
}

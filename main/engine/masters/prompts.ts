// Questions the engine needs a person to answer: a password, a key passphrase, the server's
// keyboard-interactive prompts (OTP codes), an unknown host key, a further connection past
// MaxSessions. Each is an open prompt until answered or cancelled; the UI shows the open
// ones and answers by id. Answers go straight to whoever asked and are never stored here.
import type { PromptView } from '../../../preload/api';
import { HitchError } from '../errors';

export interface PromptAnswer {
  answers: string[];
  /** The person asked to keep this secret in the OS keychain. */
  remember: boolean;
  /** For host keys: accept for this run only, or record it in known_hosts. */
  choice: 'once' | 'always' | null;
}

/** A question to ask: the prompt without its id, which the Prompter assigns. */
export type PromptSpec = Omit<PromptView, 'id' | 'keychainProblem'> & { keychainProblem?: string | null };

interface OpenPrompt {
  view: PromptView;
  resolve: (answer: PromptAnswer | null) => void;
}

export class Prompter {
  private readonly open = new Map<string, OpenPrompt>();
  private next = 1;

  constructor(
    private readonly onOpened: (view: PromptView) => void,
    private readonly onClosed: (promptId: string) => void,
  ) {}

  /** Asks and waits; resolves null when the person (or the engine) cancels. */
  ask(spec: PromptSpec): Promise<PromptAnswer | null> {
    const id = `p${this.next++}`;
    const view: PromptView = { id, ...spec, keychainProblem: spec.keychainProblem ?? null };
    return new Promise((resolve) => {
      this.open.set(id, { view, resolve });
      this.onOpened(view);
    });
  }

  list(): PromptView[] {
    return [...this.open.values()].map((p) => p.view);
  }

  answer(promptId: string, answer: PromptAnswer): void {
    const prompt = this.take(promptId);
    if (answer.answers.length !== prompt.view.fields.length) {
      // Put it back: a malformed answer must not lose the question.
      this.open.set(promptId, prompt);
      throw new HitchError('bad-request', `Prompt ${promptId} needs ${prompt.view.fields.length} answer(s), got ${answer.answers.length}.`);
    }
    prompt.resolve(answer);
  }

  cancel(promptId: string): void {
    this.take(promptId).resolve(null);
  }

  /** Cancels every open prompt of a master, e.g. when its connection attempt is abandoned. */
  cancelFor(masterId: string): void {
    for (const [id, prompt] of this.open) {
      if (prompt.view.masterId === masterId) {
        this.open.delete(id);
        this.onClosed(id);
        prompt.resolve(null);
      }
    }
  }

  private take(promptId: string): OpenPrompt {
    const prompt = this.open.get(promptId);
    if (!prompt) throw new HitchError('bad-request', `No open prompt ${promptId}: it was answered or cancelled already.`);
    this.open.delete(promptId);
    this.onClosed(promptId);
    return prompt;
  }
}

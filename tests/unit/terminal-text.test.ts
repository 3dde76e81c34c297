// Server-sent prompt text reaches the terminal with its control characters made visible.
import { describe, expect, it } from 'vitest';
import { safeForTerminal } from '../../main/cli/terminal-text';

describe('text from a server shown on the terminal', () => {
  it('shows escape sequences, bells and C1 controls as octal escapes, as OpenSSH does', () => {
    expect(safeForTerminal('\x1b[2J\x1b]0;owned\x07Password:')).toBe('\\033[2J\\033]0;owned\\007Password:');
    expect(safeForTerminal('fake\rprompt\x7f')).toBe('fake\\015prompt\\177');
    expect(safeForTerminal('csi\u009b31m')).toBe('csi\\302\\23331m');
  });

  it('keeps newlines, tabs and printable text in any script as they are', () => {
    expect(safeForTerminal('Verification code for jürgen@web1:\n\tsee the app ✓ 日本')).toBe('Verification code for jürgen@web1:\n\tsee the app ✓ 日本');
  });
});

// Text from a server (keyboard-interactive names, instructions and prompts) printed on the
// person's terminal. A hostile server could otherwise send escape sequences that rewrite the
// screen, retitle the window or fake a prompt; like OpenSSH (utf8.c, vis(3) with VIS_OCTAL),
// control characters other than newline and tab are shown as octal escapes of their bytes.

/** C0 controls but tab and newline, DEL, and the C1 controls (which some terminals obey). */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/gu;

export function safeForTerminal(text: string): string {
  return text.replace(UNSAFE, (ch) => [...Buffer.from(ch, 'utf8')].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join(''));
}

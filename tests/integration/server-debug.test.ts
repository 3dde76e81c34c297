// sshd's DEBUG notes after a public-key login are answered at once with an SSH_MSG_IGNORE
// (answerServerDebug in ssh2-channels.ts): the packet carries the TCP acknowledgement that
// sshd's Nagle-held reply to the first channel open waits for. Seen from sshd's own log, at
// the level where it records each packet.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEngine } from '../fixtures/engine';
import { startSshd, type Sshd } from '../fixtures/sshd';

const count = (text: string, line: RegExp): number => text.split('\n').filter((l) => line.test(l)).length;

describe("a master and sshd's DEBUG notes", () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd({ extraConfig: ['LogLevel DEBUG3'] });
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it('answers each with an IGNORE as it arrives', async () => {
    const t = await testEngine(sshd.clientConfig('box'), { processTrees: false });
    try {
      await t.engine.connect('box');
      let log = '';
      const deadline = Date.now() + 10_000;
      do {
        await new Promise((r) => setTimeout(r, 50));
        log = await readFile(sshd.logFile, 'utf8');
      } while (count(log, /Received SSH2_MSG_IGNORE/) < count(log, /sending debug message/) && Date.now() < deadline);
      const notes = count(log, /sending debug message/);
      expect(notes).toBeGreaterThan(0); // sshd does send them after this login
      expect(count(log, /Received SSH2_MSG_IGNORE/)).toBe(notes);
    } finally {
      await t.close();
    }
  });
});

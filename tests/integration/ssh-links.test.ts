// ssh:// links come from outside Hitch (any web page can offer one), so the engine decides
// what they may do: a host the person already has opens at once; any other is shown first,
// exactly where it would connect, and nothing is saved unless the person says so.
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessBridge, localApi } from '../../main/api/connection';
import { createRouter } from '../../main/api/router';
import type { HitchBridge } from '../../preload/channels';
import { freePort, startSshd, type Sshd } from '../fixtures/sshd';
import { testEngine, type TestEngine } from '../fixtures/engine';

let sshd: Sshd;
let t: TestEngine;
/** A client of the engine, as the desktop shell is when it hands a link over. */
let router: HitchBridge;

beforeAll(async () => {
  sshd = await startSshd();
  t = await testEngine(sshd.clientConfig('alpha'));
  router = inProcessBridge(localApi(createRouter(t.engine, t.engine.options.log)));
});

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
});

const size = { cols: 80, rows: 24 };

async function hostIds(): Promise<string[]> {
  return (await t.engine.snapshot()).catalog.hosts.map((h) => h.id);
}

describe('an ssh:// link', () => {
  it('opens a session at once on a host the person already has', async () => {
    const reply = await router.call('link.open', { url: 'ssh://alpha', ...size });
    expect(reply).toMatchObject({ ok: true, result: { id: expect.stringMatching(/^s\d+$/), hostId: 'alpha' } });
    expect(t.events.some((e) => e.event === 'prompt.opened')).toBe(false);
  });

  it('asks before connecting to a host Hitch does not know, naming exactly where, and saves nothing when declined', async () => {
    const port = await freePort();
    const before = await hostIds();
    const reply = router.call('link.open', { url: `ssh://mallory@127.0.0.1:${port}`, ...size });
    const prompt = await t.nextPrompt('open-link');
    expect(prompt.title).toBe(`Open mallory@127.0.0.1:${port}?`);
    expect(prompt.message).toContain(`connect to mallory@127.0.0.1:${port}, a host Hitch does not know`);
    expect(prompt.message).toContain('offering your keys');
    await router.call('prompt.cancel', { promptId: prompt.id });
    expect(await reply).toEqual({ ok: true, result: null });
    expect(await hostIds()).toEqual(before);
    expect(await readdir(t.dir)).not.toContain('hosts.json'); // no host saved
    expect((await t.engine.snapshot()).masters.some((m) => m.id.includes(String(port)))).toBe(false);
  });

  it('adds the host and connects only once the person confirms', async () => {
    const port = await freePort(); // nothing listens: the login itself fails, the host stays
    const reply = router.call('link.open', { url: `ssh://mallory@127.0.0.1:${port}`, ...size });
    const prompt = await t.nextPrompt('open-link');
    await router.call('prompt.answer', { promptId: prompt.id, answers: [], remember: false, choice: 'always' });
    const result = await reply;
    expect(result).toMatchObject({ ok: false, error: { code: 'refused' } });
    expect(await hostIds()).toContain(`mallory-127.0.0.1-${port}`);
  });

  it('refuses what is not plainly a host, without asking', async () => {
    for (const url of ['ssh://alice:secret@web1', 'ssh://-oProxyCommand=evil', 'ssh://%E0%A4%A@web1', 'https://web1', 'ssh://web1/etc/passwd']) {
      const reply = await router.call('link.open', { url, ...size });
      expect(reply).toMatchObject({ ok: false, error: { code: 'bad-request', message: expect.stringMatching(/^Not an ssh:\/\/ link Hitch can open/) } });
    }
    expect((await t.engine.snapshot()).prompts).toEqual([]);
  });
});

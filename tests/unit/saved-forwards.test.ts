// What a saved forwards file may hold: nothing that would reach a listener or a connect
// half-described (a remote forward with no target used to reach net.connect as null, inside
// ssh2's handler), nor a host or address with spaces or control characters.
import { describe, expect, it } from 'vitest';
import { savedForwardSchema } from '../../main/engine/forwards/saved-forwards';

describe('saved forwards schema', () => {
  it('takes whole forwards of each kind', () => {
    expect(savedForwardSchema.safeParse({ kind: 'local', bindAddress: 'localhost', listenPort: 8080, connectHost: 'db', connectPort: 5432 }).success).toBe(true);
    expect(savedForwardSchema.safeParse({ kind: 'remote', bindAddress: '*', listenPort: 0, connectHost: '127.0.0.1', connectPort: 80 }).success).toBe(true);
    expect(savedForwardSchema.safeParse({ kind: 'dynamic', bindAddress: '[::1]', listenPort: 1080, connectHost: null, connectPort: null }).success).toBe(true);
  });

  it('refuses half-described ones and hostile text', () => {
    const refused = [
      { kind: 'remote', bindAddress: 'localhost', listenPort: 9000, connectHost: null, connectPort: 80 },
      { kind: 'local', bindAddress: 'localhost', listenPort: 9000, connectHost: 'db', connectPort: null },
      { kind: 'dynamic', bindAddress: 'localhost', listenPort: 1080, connectHost: 'db', connectPort: 5432 },
      { kind: 'local', bindAddress: 'local host', listenPort: 9000, connectHost: 'db', connectPort: 1 },
      { kind: 'local', bindAddress: 'localhost', listenPort: 9000, connectHost: 'db\n', connectPort: 1 },
      { kind: 'local', bindAddress: 'localhost', listenPort: 9000, connectHost: 'db', connectPort: 0 },
    ];
    for (const forward of refused) expect(savedForwardSchema.safeParse(forward).success, JSON.stringify(forward)).toBe(false);
  });
});

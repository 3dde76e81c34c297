// The one client every transport's caller stands on: replies matched by id, events to
// listeners, and a clear answer for every call still waiting when the connection goes.
import { describe, expect, it } from 'vitest';
import { RpcClient } from '../../preload/rpc-client';

function client(): { rpc: RpcClient; sent: { id: number; method: string; params: unknown }[] } {
  const sent: { id: number; method: string; params: unknown }[] = [];
  return { rpc: new RpcClient((m) => sent.push(m)), sent };
}

describe('the API client', () => {
  it('matches replies to calls by id, in any order', async () => {
    const { rpc, sent } = client();
    const a = rpc.call('state.get', {});
    const b = rpc.call('settings.get', undefined);
    expect(sent).toEqual([
      { id: 1, method: 'state.get', params: {} },
      { id: 2, method: 'settings.get', params: {} },
    ]);
    rpc.receive({ id: 2, ok: true, result: 'second' });
    rpc.receive({ id: 1, ok: false, error: { code: 'bad-request', message: 'no' } });
    expect(await b).toEqual({ ok: true, result: 'second' });
    expect(await a).toEqual({ ok: false, error: { code: 'bad-request', message: 'no' } });
  });

  it('hands events to every listener until it unsubscribes, and ignores what is neither', () => {
    const { rpc } = client();
    const seen: string[] = [];
    const off = rpc.onEvent((e) => seen.push(`a:${e.event}`));
    rpc.onEvent((e) => seen.push(`b:${e.event}`));
    rpc.receive({ event: 'master.changed', payload: {} });
    off();
    rpc.receive({ event: 'session.changed', payload: {} });
    rpc.receive('garbage');
    rpc.receive({ id: 99, ok: true, result: null }); // an answer nobody waits for
    expect(seen).toEqual(['a:master.changed', 'b:master.changed', 'b:session.changed']);
  });

  it('answers every waiting call, and every later one, with the reason the connection was lost', async () => {
    const { rpc, sent } = client();
    const reasons: string[] = [];
    rpc.onClose((r) => reasons.push(r));
    const waiting = rpc.call('state.get', {});
    rpc.lost('The engine stopped.');
    rpc.lost('again'); // once only
    expect(await waiting).toEqual({ ok: false, error: { code: 'network', message: 'The engine stopped.' } });
    expect(await rpc.call('state.get', {})).toEqual({ ok: false, error: { code: 'network', message: 'The engine stopped.' } });
    expect(sent).toHaveLength(1);
    expect(reasons).toEqual(['The engine stopped.']);
    rpc.onClose((r) => reasons.push(`late:${r}`));
    expect(reasons).toEqual(['The engine stopped.', 'late:The engine stopped.']);
  });

  it('takes a refusal of the whole connection as lost, with the refusal as the reason', async () => {
    const { rpc } = client();
    const waiting = rpc.call('state.get', {});
    rpc.receive({ id: null, ok: false, error: { code: 'forbidden', message: 'The Hitch engine serves only its own user.' } });
    expect(await waiting).toEqual({ ok: false, error: { code: 'network', message: 'The Hitch engine serves only its own user.' } });
    expect(rpc.closed).toBe(true);
  });
});

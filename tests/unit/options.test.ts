// Settings from flags and environment: a user can point Hitch at other files and choose how
// long idle masters live, and a bad value is refused with the flag's name.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../main/engine/log';
import { engineOptions, parseIdleTimeout, runtimeDirOf } from '../../main/engine/config/options';

describe('engine settings', () => {
  it('takes flags over HITCH_* variables over defaults', () => {
    const env = { HITCH_SSH_CONFIG: '/env/config', HITCH_DATA_DIR: '/env/data', SSH_AUTH_SOCK: '/run/agent' };
    const fromEnv = engineOptions({}, env, silentLogger);
    expect(fromEnv).toMatchObject({ sshConfigPath: '/env/config', dataDir: '/env/data', knownHostsPath: '/env/data/known_hosts', authSock: '/run/agent' });
    const fromFlags = engineOptions({ 'ssh-config': '/flag/config', 'known-hosts': '/flag/kh' }, env, silentLogger);
    expect(fromFlags).toMatchObject({ sshConfigPath: '/flag/config', dataDir: '/env/data', knownHostsPath: '/flag/kh' });
  });

  it('reads the idle timeout in minutes, or never', () => {
    expect(parseIdleTimeout(undefined)).toBeUndefined(); // the engine's default (10 minutes)
    expect(parseIdleTimeout('never')).toBeNull();
    expect(parseIdleTimeout('2.5')).toBe(150_000);
    expect(parseIdleTimeout('0')).toBe(0);
    expect(() => parseIdleTimeout('soon')).toThrow(/--idle-timeout: "soon"/);
    expect(() => parseIdleTimeout('-1')).toThrow(/--idle-timeout/);
    expect(engineOptions({}, { HITCH_IDLE_TIMEOUT: 'never' }, silentLogger).idleTimeoutMs).toBeNull();
  });

  it('puts the engine socket in the private runtime directory, or beside a data directory of its own', () => {
    expect(runtimeDirOf({}, { XDG_RUNTIME_DIR: '/run/user/1000' }, '/home/u/.config/hitch')).toBe('/run/user/1000/hitch');
    expect(runtimeDirOf({}, {}, '/home/u/.config/hitch')).toBe('/home/u/.config/hitch/run');
    // One engine per data directory: a second profile (or a test) never meets the usual engine.
    expect(runtimeDirOf({ 'data-dir': '/d' }, { XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/d/run');
    expect(runtimeDirOf({}, { HITCH_DATA_DIR: '/e', XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/e/run');
    expect(runtimeDirOf({ 'runtime-dir': '/r' }, { HITCH_RUNTIME_DIR: '/s', HITCH_DATA_DIR: '/e' })).toBe('/r');
    expect(runtimeDirOf({}, { HITCH_RUNTIME_DIR: '/s', HITCH_DATA_DIR: '/e' })).toBe('/s');
  });
});

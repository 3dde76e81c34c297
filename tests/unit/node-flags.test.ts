// The engine's V8 flags are written once in TypeScript (ENGINE_NODE_FLAGS, which `hitch --start`
// and the benchmark use) and repeated where a shell or a packager starts the engine: the web
// host's two launchers and Electron's, whose main process takes V8 flags from its command line
// only. A flag changed in one place and not the others would leave one way of running Hitch
// with another engine than the one measured.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENGINE_NODE_FLAGS } from '../../main/engine/node-flags';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const FLAGS = ENGINE_NODE_FLAGS.join(' ');

describe("the engine's V8 flags", () => {
  it('are the ones the download path was measured with', () => {
    expect(ENGINE_NODE_FLAGS).toContain('--max-semi-space-size=2');
    expect(ENGINE_NODE_FLAGS).toContain('--initial-old-space-size=64');
  });

  it('start the web host from npm start and npm run web', () => {
    expect(read('scripts/start.sh')).toContain(`exec node ${FLAGS} out/main/web.js`);
    expect(JSON.parse(read('package.json')).scripts.web).toBe(`node ${FLAGS} out/main/web.js`);
  });

  it('run the benchmark, whose scale and interactive rows measure an engine in its own process', () => {
    expect(JSON.parse(read('package.json')).scripts.bench).toContain(`node ${FLAGS} --import tsx bench/run.ts`);
  });

  it("reach Electron's main process from its command line", () => {
    expect(read('scripts/start.sh')).toContain(`exec "$bin" --js-flags="${FLAGS}" out/main/index.js`);
    // The desktop entry's Exec line quotes whole arguments only.
    expect(read('build/electron-builder.yml')).toContain(`executableArgs: ['"--js-flags=${FLAGS}"']`);
    // appendSwitch('js-flags') reaches the renderers only: it must not stand in for the above.
    expect(read('main/app/index.ts')).not.toMatch(/appendSwitch\(\s*'js-flags'/);
  });
});

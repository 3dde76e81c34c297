import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// One build for the three parts. The main build has three entries: the Electron shell
// (index), the headless web host (web) and the `hitch` command (cli); only the first may
// import electron.
export default defineConfig({
  main: {
    build: {
      rollupOptions: {
        input: {
          index: resolve(__dirname, 'main/app/index.ts'),
          web: resolve(__dirname, 'main/web/index.ts'),
          cli: resolve(__dirname, 'main/cli/index.ts'),
        },
        // Lazy imports as require(): a short `hitch` command then never starts Node's ESM
        // loader (about 10 ms of its start).
        output: { dynamicImportInCjs: false },
      },
    },
  },
  preload: {
    // A sandboxed preload cannot require packages: bundle everything it uses.
    build: {
      externalizeDeps: false,
      rollupOptions: { input: { index: resolve(__dirname, 'preload/index.ts') } },
    },
  },
  renderer: {
    root: resolve(__dirname, 'renderer'),
    plugins: [svelte()],
    build: {
      rollupOptions: { input: resolve(__dirname, 'renderer/index.html') },
    },
  },
});

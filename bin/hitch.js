#!/usr/bin/env node
// `hitch`: runs the command-line client built to out/main/cli.js (see main/cli/index.ts).
'use strict';

(async () => {
  const { existsSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { pathToFileURL } = await import('node:url');
  const root = join(__dirname, '..');
  const cli = join(root, 'out', 'main', 'cli.js');
  if (!existsSync(cli)) {
    process.stderr.write(`hitch: not built yet (no ${cli}). Run \`npm run build\` in ${root} first.\n`);
    process.exit(1);
  }
  await import(pathToFileURL(cli).href);
})();

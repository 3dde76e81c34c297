#!/usr/bin/env node
// `hitch`: runs the command-line client built to out/main/cli.js (see main/cli/index.ts).
'use strict';

/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: */
// require(), not import(): loading the CommonJS bundle through Node's ESM loader costs ~10 ms
// of every command's start.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const cli = join(__dirname, '..', 'out', 'main', 'cli.js');
if (!existsSync(cli)) {
  process.stderr.write(`hitch: not built yet (no ${cli}). Run \`npm run build\` in ${join(__dirname, '..')} first.\n`);
  process.exit(1);
}
require(cli);

#!/usr/bin/env bash
# `npm start`: the Electron app where its binary can be had, otherwise the same UI through
# the loopback web host. Arguments go to Hitch (e.g. --ssh-config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

electron_binary() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = path.resolve("node_modules/electron");
    const p = path.join(dir, "path.txt");
    if (!fs.existsSync(p)) process.exit(1);
    const bin = path.join(dir, "dist", fs.readFileSync(p, "utf8").trim());
    if (!fs.existsSync(bin)) process.exit(1);
    console.log(bin);'
}

# scripts/setup.sh, above, has already tried to download the binary where it was missing.
bin=$(electron_binary 2>/dev/null) || bin=""

if [ -n "$bin" ] && { [ "$(uname)" != Linux ] || [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; }; then
  exec "$bin" --js-flags="--max-semi-space-size=2 --initial-old-space-size=64" out/main/index.js "$@"  # the engine's V8 flags reach Electron's main process only from its command line
fi
if [ -z "$bin" ]; then
  echo "Electron's binary is not available on this machine (it could not be downloaded), so Hitch is serving the same UI through its web host instead."
else
  echo "No display to open a window on, so Hitch is serving the same UI through its web host instead."
fi
exec node --max-semi-space-size=2 --initial-old-space-size=64 out/main/web.js "$@"  # the engine's Node flags: see ENGINE_NODE_FLAGS in main/engine/node-flags.ts

#!/usr/bin/env bash
# Installs what Hitch needs on a Debian/Ubuntu machine, then builds it. Idempotent: a second
# run installs nothing. `--test` adds what the test suite needs (sshd, Chromium, D-Bus and
# gnome-keyring for the keychain tests).
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=no
[ "${1:-}" = "--test" ] && want_tests=yes

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need() { for p in "$@"; do have_pkg "$p" || missing+=("$p"); done; }

if command -v dpkg-query >/dev/null; then
  need openssh-client
  if [ "$want_tests" = yes ]; then
    need openssh-server chromium fonts-dejavu-core dbus gnome-keyring libsecret-tools procps psmisc iproute2
    # A virtual display (Xvfb) for the Electron window test, where the Electron binary exists.
    need xvfb
    # Stock clients the control socket tests drive: rsync, git, and util-linux's script (a pty).
    need rsync git util-linux
    # Durable shells live in tmux on the test server (the test sshd runs on this machine).
    need tmux
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
elif ! command -v ssh >/dev/null; then
  echo "setup: no dpkg here; install the OpenSSH client yourself for exact host settings." >&2
fi

# Node packages. npm ci never fetches the Electron binary (it comes from outside the npm
# registry), so a machine that cannot reach its host never fails or waits in npm ci.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing node packages"
  ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

# The Electron binary, for the app and its window test: tried on every run while it is missing,
# for at most 120 seconds. install.js returns at once when the binary is already there. Where
# the download cannot happen, one line says so and setup goes on (the Electron test is then
# skipped, with the reason, and `npm start` serves the web UI instead).
if [ -f node_modules/electron/install.js ]; then
  mkdir -p .tmp
  log=.tmp/electron-install.log
  electron_status=0
  timeout -k 5 120 node node_modules/electron/install.js >"$log" 2>&1 || electron_status=$?
  if [ "$electron_status" -ne 0 ]; then
    if [ "$electron_status" -eq 124 ] || [ "$electron_status" -eq 137 ]; then
      why="no answer within 120 s"
    else
      why=$(grep -m1 -v -E '^[[:space:]]*(at |$)' "$log" | cut -c1-160 || true)
      why=${why:-"install.js exited $electron_status"}
    fi
    echo "setup: the Electron binary could not be downloaded ($why; full output in $log); the Electron test will be skipped."
  fi
fi

echo "setup: building"
npx electron-vite build --logLevel error >/dev/null

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
    # Stock clients the control socket tests drive: rsync, git, and util-linux's script (a pty).
    need rsync git util-linux
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

# Node packages. The Electron binary is not fetched here (it comes from outside the npm
# registry); scripts/start.sh tries to get it when you run the app.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing node packages"
  ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building"
npx electron-vite build --logLevel error >/dev/null

#!/usr/bin/env bash
# Runs a command against a real but throwaway Secret Service: a private D-Bus session bus, and
# gnome-keyring-daemon with an unlocked "login" keyring in a temp dir. The keychain tests then
# exercise the real thing without touching the user's own keyring or desktop session.
# Usage: bash scripts/with-keyring.sh COMMAND [ARGS...]   (exits with COMMAND's status)
set -euo pipefail

# Always on a bus of our own: a keyring daemon started on the user's real session bus would
# compete with theirs. dbus-run-session ends that bus when the command exits.
if [ "${1:-}" != "--in-private-bus" ]; then
  for tool in dbus-run-session dbus-send dbus-update-activation-environment gnome-keyring-daemon; do
    if ! command -v "$tool" >/dev/null; then
      echo "with-keyring: $tool is missing (bash scripts/setup.sh --test installs it)" >&2
      exit 127
    fi
  done
  exec dbus-run-session -- bash "$0" --in-private-bus "$@"
fi
shift

dir=$(mktemp -d "${TMPDIR:-/tmp}/hitch-keyring.XXXXXX")
mkdir -m 700 "$dir/run"
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The daemon keeps its keyrings in XDG_DATA_HOME and its control socket in XDG_RUNTIME_DIR;
# both point into $dir, and so does HOME, so nothing lands in the real ~/.local or ~/.cache.
private=(HOME="$dir" XDG_DATA_HOME="$dir/data" XDG_RUNTIME_DIR="$dir/run")
# Services the bus starts on demand (a second keyring daemon if a client races ours, the unlock
# prompter) get the same private directories, and no display: a test of a locked keyring must
# fail fast, not pop a prompt on the developer's screen.
dbus-update-activation-environment "${private[@]}" DISPLAY= WAYLAND_DISPLAY=

# --unlock reads the password on stdin and creates the "login" keyring, unlocked, as the default
# collection. --foreground keeps it our child, so we can stop it before removing $dir.
password="hitch-test-keyring" # throwaway: the keyring is deleted with $dir
printf '%s' "$password" |
  env "${private[@]}" gnome-keyring-daemon --foreground --unlock --components=secrets >"$dir/env" &
daemon=$!

# The daemon claims org.freedesktop.secrets a moment after it starts; a client that asked
# earlier would get a second, locked daemon by bus activation. Wait until ours owns the name.
owner_pid() {
  dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null |
    awk '{ print $2 }'
}
for _ in $(seq 100); do
  [ "$(owner_pid)" = "$daemon" ] && break
  kill -0 "$daemon" 2>/dev/null || { echo "with-keyring: gnome-keyring-daemon exited early" >&2; exit 1; }
  sleep 0.05
done
if [ "$(owner_pid)" != "$daemon" ]; then
  echo "with-keyring: gnome-keyring-daemon did not claim org.freedesktop.secrets" >&2
  exit 1
fi

# Whatever the daemon prints (GNOME_KEYRING_CONTROL=..., when it has no XDG_RUNTIME_DIR) is for
# its clients.
while IFS= read -r line; do
  if [[ "$line" == *=* ]]; then export "${line?}"; fi
done <"$dir/env"
# Tells the keychain tests they may write here: this keyring is theirs to throw away.
export HITCH_TEST_KEYRING="$dir"

status=0
"$@" || status=$?
exit "$status"

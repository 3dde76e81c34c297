#!/usr/bin/env bash
# `npm test`: everything from a fresh clone. Installs what the tests need, type-checks and
# lints, then runs unit and integration tests (against a real sshd and a throwaway Secret
# Service) and the browser tests (Debian's Chromium against the web host). Ends with one
# "N passed, N failed, N skipped" line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit 1

results=.tmp/results
rm -rf "$results" && mkdir -p "$results"
status=0

echo "== type-check and lint"
npm run --silent check || status=1

echo "== unit and integration tests (vitest, real sshd, throwaway Secret Service)"
# with-keyring.sh: a private D-Bus session with an unlocked gnome-keyring for the keychain tests.
bash scripts/with-keyring.sh \
  npx vitest run --reporter=default --reporter=json --outputFile.json="$results/vitest.json" || status=1

echo "== browser tests (Playwright, Debian Chromium)"
PLAYWRIGHT_JSON_OUTPUT_NAME="$results/playwright.json" npx playwright test --reporter=list,json || status=1

node scripts/summary.mjs "$results" || status=1
exit $status

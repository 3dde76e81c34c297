#!/usr/bin/env bash
# `npm test`: everything from a fresh clone. Installs what the tests need, type-checks and
# lints, then runs unit and integration tests (against a real sshd and a throwaway Secret
# Service) and the browser tests (Debian's Chromium against the web host). Ends with one
# "N passed, N failed, N skipped" line, the last line printed (CI parses it); the line before
# it gives the type-check and lint results. scripts/summary.mjs says what counts as failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! bash scripts/setup.sh --test; then
  echo "setup failed, so nothing was tested"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# Everything the summary reads: each step's exit status and each runner's reports.
results=.tmp/results
rm -rf "$results" && mkdir -p "$results"
status=0

echo "== type-check and lint"
# The steps of `npm run check` (package.json), each run even when one before it failed, and
# recorded as "<tool> <exit status>": eslint in lint.status, the rest (tsc, svelte-check) in
# typecheck.status.
mapfile -t steps < <(node -p 'require("./package.json").scripts.check.split("&&").map((s) => s.trim()).filter(Boolean).join("\n")')
for step in "${steps[@]}"; do
  tool=${step%% *}
  group=typecheck
  [ "$tool" = eslint ] && group=lint
  code=0
  PATH="$PWD/node_modules/.bin:$PATH" bash -c "$step" || code=$?
  echo "$tool $code" >>"$results/$group.status"
  [ "$code" -eq 0 ] || status=1
done

echo "== unit and integration tests (vitest, real sshd, throwaway Secret Service)"
# with-keyring.sh: a private D-Bus session with an unlocked gnome-keyring for the keychain tests.
# The JUnit report names the suites that failed outside their tests (a failed beforeAll), which
# the JSON report does not.
code=0
bash scripts/with-keyring.sh \
  npx vitest run --reporter=default --reporter=json --reporter=junit \
  --outputFile.json="$results/vitest.json" --outputFile.junit="$results/vitest.xml" || code=$?
echo "$code" >"$results/vitest.status"
[ "$code" -eq 0 ] || status=1

echo "== browser tests (Playwright, Debian Chromium)"
code=0
PLAYWRIGHT_JSON_OUTPUT_NAME="$results/playwright.json" npx playwright test --reporter=list,json || code=$?
echo "$code" >"$results/playwright.status"
[ "$code" -eq 0 ] || status=1

echo "== summary"
code=0
summary=$(node scripts/summary.mjs "$results" 2>&1) || code=$?
printf '%s\n' "$summary"
[ "$code" -eq 0 ] || status=1
# Should the summary itself break, the closing line still says the run failed.
if ! tail -n 1 <<<"$summary" | grep -Eq '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$'; then
  echo "scripts/summary.mjs did not finish (exit $code), so the counts are unknown"
  echo "0 passed, 1 failed, 0 skipped"
  status=1
fi
exit $status

// Adds up what `npm test` (scripts/test.sh) recorded in its results directory into one closing
// line, "N passed, N failed, N skipped", printed last and alone on its line: CI parses it.
// Before it: the reason for each Playwright skip, one line per problem found outside the plain
// test counts, and the check results ("typecheck: ok, lint: ok").
//
// The count must not look better than the run was. Besides the tests the reports count as
// failed, these count as failed too:
//   - a check step (typecheck: tsc and svelte-check; lint: eslint) that failed or did not run:
//     1 for typecheck, 1 for lint;
//   - a report that is missing or unreadable: 1 each;
//   - vitest: every test that never ran because a beforeAll hook of its suite (or of its file)
//     failed; vitest's JSON calls those "skipped", so the JUnit report, which names failed suites,
//     says which. A suite that failed with no such test (a failed afterAll, a file that could not
//     be imported or collected) counts 1. So does a file vitest marks failed for no reason that
//     either report names;
//   - Playwright: each error outside tests (its report's top-level `errors`: a spec file that
//     failed to load, a failed global setup, ...), each unexpected (failed or timed-out) test,
//     each interrupted one, and each that did not run though it was not skipped on purpose
//     (blocked by a failed beforeAll, or by the run stopping early);
//   - a runner that exited non-zero (its .status file) although its report shows no failure:
//     vitest, for one, reports errors thrown outside any test only on its console.
//
// Files read, all written by scripts/test.sh:
//   typecheck.status, lint.status  one line per step: "<tool> <exit status>"
//   vitest.json, vitest.xml        vitest's JSON and JUnit reports
//   vitest.status                  vitest's exit status
//   playwright.json                Playwright's JSON report
//   playwright.status              Playwright's exit status
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/summary.mjs RESULTS_DIR');
  console.log('0 passed, 1 failed, 0 skipped');
  process.exit(1);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const problems = [];
/** Not failures: what was skipped on purpose, and why, where the report says. */
const notes = [];
const problem = (text) => problems.push(text.replace(/\s+/g, ' ').trim());
const short = (text, max = 200) => {
  const flat = String(text ?? '').replace(/\u001b\[[0-9;]*m/g, '').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** The file's text, or null when it is not there. */
function readIfThere(name) {
  const file = join(dir, name);
  return existsSync(file) ? readFileSync(file, 'utf8') : null;
}

/** The parsed JSON report, or null (and one failure) when it is missing or unreadable. */
function readReport(name, what) {
  const text = readIfThere(name);
  if (text === null) {
    problem(`${what}: no report (${name}): counted as 1 failed`);
    failed += 1;
    return null;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    problem(`${what}: unreadable report (${name}: ${short(err.message)}): counted as 1 failed`);
    failed += 1;
    return null;
  }
}

/** A runner's exit status as test.sh recorded it, or null when it was not recorded. */
function exitStatus(name) {
  const text = readIfThere(name);
  if (text === null) return null;
  const n = Number.parseInt(text.trim(), 10);
  return Number.isNaN(n) ? null : n;
}

// ── type-check and lint ────────────────────────────────────────────────────────────────────
const checkWords = [];
for (const group of ['typecheck', 'lint']) {
  const text = readIfThere(`${group}.status`);
  const steps = (text ?? '')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => parts[0])
    .map(([tool, code]) => ({ tool, code: Number.parseInt(code ?? '', 10) }));
  const bad = steps.filter((s) => s.code !== 0);
  if (steps.length === 0) {
    checkWords.push(`${group}: not run`);
    failed += 1;
  } else if (bad.length > 0) {
    checkWords.push(`${group}: FAILED (${bad.map((s) => `${s.tool} exited ${Number.isNaN(s.code) ? '?' : s.code}`).join(', ')})`);
    failed += 1;
  } else {
    checkWords.push(`${group}: ok`);
  }
}

// ── vitest ─────────────────────────────────────────────────────────────────────────────────
const XML_ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const unescapeXml = (s) => s.replace(/&(lt|gt|amp|quot|apos);/g, (_, e) => XML_ENTITIES[e]);
const attr = (attrs, name) => {
  const m = new RegExp(`(?:^|\\s)${name}="([^"]*)"`).exec(attrs);
  return m ? unescapeXml(m[1]) : null;
};

/**
 * From vitest's JUnit report: per file (its path relative to the root), the test cases that
 * carry a <failure>, as { name, message }. Besides failed tests ("Suite > test"), vitest adds a
 * case for each suite whose own hooks failed (named after the suite alone) and one named after
 * the file for a file that failed to load or whose top-level hooks failed.
 */
function junitFailures(xml) {
  const files = new Map();
  for (const suite of xml.matchAll(/<testsuite\s([^>]*)>([\s\S]*?)<\/testsuite>/g)) {
    const failures = [];
    for (const tc of suite[2].matchAll(/<testcase\s([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
      const f = /<failure\s([^>]*)>/.exec(tc[2] ?? '');
      if (f) failures.push({ name: attr(tc[1], 'name') ?? '', message: attr(f[1], 'message') ?? '' });
    }
    files.set(attr(suite[1], 'name') ?? '', failures);
  }
  return files;
}

const NOT_RUN = new Set(['skipped', 'pending', 'todo', 'disabled']);

function addVitest(vitest) {
  const failedBefore = failed;
  let failedTests = 0;
  const xmlText = readIfThere('vitest.xml');
  let junit = new Map();
  if (xmlText === null) {
    problem('vitest: no JUnit report (vitest.xml), so failed suites cannot be told apart: counted as 1 failed');
    failed += 1;
  } else {
    junit = junitFailures(xmlText);
  }

  for (const file of vitest.testResults ?? []) {
    const tests = file.assertionResults ?? [];
    const junitName = [...junit.keys()].find((name) => name && (file.name === name || file.name.endsWith(`/${name}`)));
    const rel = junitName ?? file.name;
    const blocked = new Set();

    // Cases in the JUnit report beyond the failed tests: the suites that failed on their own.
    const failedPaths = tests.filter((t) => t.status === 'failed').map((t) => [...t.ancestorTitles, t.title].join(' > '));
    const suiteErrors = [];
    for (const f of junit.get(junitName) ?? []) {
      const i = failedPaths.indexOf(f.name);
      if (i >= 0) failedPaths.splice(i, 1);
      else suiteErrors.push(f);
    }
    for (const err of suiteErrors) {
      const wholeFile = err.name === rel;
      const under = tests.filter((t) => NOT_RUN.has(t.status) && !blocked.has(t) && (wholeFile || t.ancestorTitles.includes(err.name)));
      for (const t of under) blocked.add(t);
      failed += Math.max(1, under.length);
      const where = wholeFile ? rel : `${rel} › ${err.name}`;
      const message = short(err.message || (wholeFile ? file.message : ''));
      problem(
        under.length > 0
          ? `vitest: ${where} failed outside its tests (${message}): its ${under.length} test(s) never ran, counted as failed`
          : `vitest: ${where} failed outside its tests (${message}): counted as 1 failed`,
      );
    }
    // Marked failed, with no failed test and no failed suite to show for it.
    if (file.status === 'failed' && suiteErrors.length === 0 && !tests.some((t) => t.status === 'failed')) {
      failed += 1;
      problem(`vitest: ${rel} failed with no failed test${file.message ? ` (${short(file.message)})` : ''}: counted as 1 failed`);
    }

    for (const t of tests) {
      if (blocked.has(t)) continue;
      if (t.status === 'passed') passed += 1;
      else if (t.status === 'failed') {
        failed += 1;
        failedTests += 1;
      } else skipped += 1;
    }
  }
  // The report's own total, should its per-file lists ever hold fewer.
  if ((vitest.numFailedTests ?? 0) > failedTests) {
    problem(`vitest: its report counts ${vitest.numFailedTests} failed tests, its files list ${failedTests}: counted as ${vitest.numFailedTests}`);
    failed += vitest.numFailedTests - failedTests;
  }

  const status = exitStatus('vitest.status');
  if (failed === failedBefore && (vitest.success === false || (status !== null && status !== 0))) {
    failed += 1;
    problem(
      `vitest exited ${status ?? '?'}${vitest.success === false ? ' and calls the run unsuccessful' : ''} though no test or suite in its report failed: an error outside the tests (see "Errors" in its output above): counted as 1 failed`,
    );
  }
}

// ── Playwright ─────────────────────────────────────────────────────────────────────────────
function* specTests(suite, path = []) {
  const here = suite.title ? [...path, suite.title] : path;
  for (const spec of suite.specs ?? []) for (const test of spec.tests ?? []) yield { title: [...here, spec.title].join(' › '), test };
  for (const child of suite.suites ?? []) yield* specTests(child, here);
}

function addPlaywright(pw) {
  const failedBefore = failed;
  let unexpected = 0;
  for (const err of pw.errors ?? []) {
    failed += 1;
    const where = err.location ? ` (${err.location.file}:${err.location.line})` : '';
    problem(`Playwright: error outside tests${where}: ${short(err.message ?? err.value ?? JSON.stringify(err))}: counted as 1 failed`);
  }
  for (const file of pw.suites ?? []) {
    for (const { title, test } of specTests(file)) {
      const results = test.results ?? [];
      if (test.status === 'expected' || test.status === 'flaky') passed += 1;
      else if (test.status === 'unexpected') {
        failed += 1;
        unexpected += 1;
        const timedOut = results.some((r) => r.status === 'timedOut');
        if (timedOut) problem(`Playwright: ${title} timed out`);
      } else if (results.some((r) => r.status === 'interrupted')) {
        failed += 1;
        problem(`Playwright: ${title} was interrupted: counted as failed`);
      } else if (results.length === 0 || test.expectedStatus !== 'skipped') {
        failed += 1;
        problem(`Playwright: ${title} did not run (not a skip of its own: a failed hook or an early stop): counted as failed`);
      } else {
        skipped += 1;
        const why = (test.annotations ?? []).find((a) => (a.type === 'skip' || a.type === 'fixme') && a.description);
        notes.push(`Playwright skipped ${title}${why ? `: ${short(why.description, 300)}` : ''}`);
      }
    }
  }
  // The report's own total, should its suites ever hold fewer.
  if ((pw.stats?.unexpected ?? 0) > unexpected) {
    problem(`Playwright: its report counts ${pw.stats.unexpected} unexpected tests, its suites list ${unexpected}: counted as ${pw.stats.unexpected}`);
    failed += pw.stats.unexpected - unexpected;
  }
  const status = exitStatus('playwright.status');
  if (failed === failedBefore && status !== null && status !== 0) {
    failed += 1;
    problem(`Playwright exited ${status} though no test in its report failed: counted as 1 failed`);
  }
}

/** Adds a report's counts; a report of a shape this script does not know counts as 1 failed. */
function add(name, what, addReport) {
  const report = readReport(name, what);
  if (!report) return;
  const before = { passed, failed, skipped };
  try {
    addReport(report);
  } catch (err) {
    ({ passed, failed, skipped } = before);
    failed += 1;
    problem(`${what}: ${name} could not be added up (${short(err.message)}): counted as 1 failed`);
  }
}
add('vitest.json', 'vitest', addVitest);
add('playwright.json', 'Playwright', addPlaywright);

const SHOWN = 30;
for (const n of notes.slice(0, SHOWN)) console.log(n);
if (notes.length > SHOWN) console.log(`… and ${notes.length - SHOWN} more skipped`);
for (const p of problems.slice(0, SHOWN)) console.log(p);
if (problems.length > SHOWN) console.log(`… and ${problems.length - SHOWN} more like these`);
console.log(checkWords.join(', '));
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);

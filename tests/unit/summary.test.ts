// scripts/summary.mjs, the closing line of `npm test`: run on small reports shaped as vitest
// (JSON and JUnit) and Playwright (JSON) write them, with the exit statuses scripts/test.sh
// records. Whatever went wrong outside a test's own body must show up as failed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = resolve('scripts/summary.mjs');
const ROOT = '/work/hitch';

interface VitestTest {
  ancestorTitles: string[];
  title: string;
  status: 'passed' | 'failed' | 'skipped' | 'pending' | 'todo';
}
interface VitestFile {
  /** Relative to the root, as the JUnit report names it. */
  name: string;
  status: 'passed' | 'failed';
  message?: string;
  tests: VitestTest[];
  /** JUnit cases for suites that failed on their own: the suite's name, or the file's. */
  suiteErrors?: { name: string; message: string }[];
}

const t = (path: string, status: VitestTest['status']): VitestTest => {
  const parts = path.split(' > ');
  return { ancestorTitles: parts.slice(0, -1), title: parts.at(-1)!, status };
};

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** vitest's JSON report for these files. */
function vitestJson(files: VitestFile[]): string {
  const tests = files.flatMap((f) => f.tests);
  const count = (...s: string[]): number => tests.filter((x) => s.includes(x.status)).length;
  const anyFailed = files.some((f) => f.status === 'failed');
  return JSON.stringify({
    numTotalTestSuites: files.length,
    numFailedTestSuites: files.filter((f) => f.status === 'failed').length,
    numPassedTestSuites: files.filter((f) => f.status === 'passed').length,
    numPendingTestSuites: 0,
    numTotalTests: tests.length,
    numPassedTests: count('passed'),
    numFailedTests: count('failed'),
    numPendingTests: count('skipped', 'pending'),
    numTodoTests: count('todo'),
    success: !anyFailed,
    testResults: files.map((f) => ({
      assertionResults: f.tests.map((x) => ({
        ancestorTitles: x.ancestorTitles,
        fullName: [...x.ancestorTitles, x.title].join(' '),
        status: x.status,
        title: x.title,
        failureMessages: x.status === 'failed' ? ['Error: boom'] : [],
        meta: {},
        tags: [],
      })),
      status: f.status,
      message: f.message ?? '',
      name: `${ROOT}/${f.name}`,
    })),
  });
}

/** vitest's JUnit report for the same files: a case per test, then one per failed suite. */
function vitestXml(files: VitestFile[]): string {
  const suites = files.map((f) => {
    const cases = f.tests.map((x) => {
      const body = x.status === 'failed' ? '<failure message="boom" type="Error">\nError: boom\n</failure>' : x.status === 'passed' ? '' : '<skipped/>';
      return `<testcase classname="${xmlEscape(f.name)}" name="${xmlEscape([...x.ancestorTitles, x.title].join(' > '))}" time="0">\n${body}\n</testcase>`;
    });
    for (const e of f.suiteErrors ?? []) {
      cases.push(
        `<testcase classname="${xmlEscape(f.name)}" name="${xmlEscape(e.name)}" time="0">\n<failure message="${xmlEscape(e.message)}" type="Error">\nError: ${xmlEscape(e.message)}\n</failure>\n</testcase>`,
      );
    }
    return `<testsuite name="${xmlEscape(f.name)}" timestamp="2026-01-01T00:00:00.000Z" hostname="ci" tests="${cases.length}" failures="0" errors="0" skipped="0" time="0">\n${cases.join('\n')}\n</testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8" ?>\n<testsuites name="vitest tests" tests="0" failures="0" errors="0" time="0">\n${suites.join('\n')}\n</testsuites>\n`;
}

interface PwTest {
  title: string;
  /** The test's outcome, as Playwright's JSON report has it. */
  status: 'expected' | 'unexpected' | 'flaky' | 'skipped';
  expectedStatus?: 'passed' | 'skipped';
  /** Each run's status; one 'passed' run unless given. */
  results?: string[];
  /** The reason given for skipping it. */
  reason?: string;
}

/** Playwright's JSON report: one spec file of tests, errors outside tests, and the stats. */
function playwrightJson(tests: PwTest[], errors: { message: string }[] = []): string {
  const stats = { startTime: '2026-01-01T00:00:00.000Z', duration: 1, expected: 0, skipped: 0, unexpected: 0, flaky: 0 };
  for (const x of tests) stats[x.status] += 1;
  return JSON.stringify({
    config: {},
    suites: tests.length
      ? [
          {
            title: 'web.spec.ts',
            file: 'web.spec.ts',
            line: 0,
            column: 0,
            specs: tests.map((x) => ({
              title: x.title,
              ok: x.status !== 'unexpected',
              tags: [],
              tests: [
                {
                  timeout: 60000,
                  annotations: x.reason ? [{ type: 'skip', description: x.reason }] : [],
                  expectedStatus: x.expectedStatus ?? 'passed',
                  projectId: '',
                  projectName: '',
                  results: (x.results ?? ['passed']).map((status) => ({ status, duration: 1, errors: [], retry: 0 })),
                  status: x.status,
                },
              ],
            })),
          },
        ]
      : [],
    errors,
    stats,
  });
}

const GREEN_VITEST: VitestFile[] = [
  { name: 'tests/unit/a.test.ts', status: 'passed', tests: [t('a > works', 'passed'), t('a > also works', 'passed'), t('a > not on this OS', 'skipped')] },
];
const GREEN_PLAYWRIGHT: PwTest[] = [
  { title: 'logs in', status: 'expected' },
  { title: 'electron', status: 'skipped', expectedStatus: 'skipped', results: ['skipped'], reason: 'The Electron binary is not installed' },
];

interface Results {
  typecheck?: string | null;
  lint?: string | null;
  vitest?: VitestFile[] | null;
  vitestXml?: boolean;
  vitestStatus?: number;
  playwright?: PwTest[] | null;
  playwrightErrors?: { message: string }[];
  playwrightStatus?: number;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes a results directory (all green unless told otherwise), runs the summary on it. */
function summarize(r: Results = {}): { lines: string[]; last: string; exitCode: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'hitch-summary-'));
  dirs.push(dir);
  const write = (name: string, text: string): void => writeFileSync(join(dir, name), text);
  const typecheck = r.typecheck === undefined ? 'tsc 0\nsvelte-check 0\n' : r.typecheck;
  const lint = r.lint === undefined ? 'eslint 0\n' : r.lint;
  if (typecheck !== null) write('typecheck.status', typecheck);
  if (lint !== null) write('lint.status', lint);
  const vitest = r.vitest === undefined ? GREEN_VITEST : r.vitest;
  if (vitest !== null) {
    write('vitest.json', vitestJson(vitest));
    if (r.vitestXml !== false) write('vitest.xml', vitestXml(vitest));
  }
  write('vitest.status', `${r.vitestStatus ?? (vitest?.some((f) => f.status === 'failed') ? 1 : 0)}\n`);
  const pw = r.playwright === undefined ? GREEN_PLAYWRIGHT : r.playwright;
  if (pw !== null) write('playwright.json', playwrightJson(pw, r.playwrightErrors));
  write('playwright.status', `${r.playwrightStatus ?? 0}\n`);

  const run = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' });
  const lines = run.stdout.trimEnd().split('\n');
  return { lines, last: lines.at(-1)!, exitCode: run.status };
}

describe('npm test’s closing line (scripts/summary.mjs)', () => {
  it('all green: every test counted, exit 0, the check results on the line before', () => {
    const s = summarize();
    expect(s.last).toBe('3 passed, 0 failed, 2 skipped');
    expect(s.lines.at(-2)).toBe('typecheck: ok, lint: ok');
    // Nothing else but the reason given for a skip.
    expect(s.lines).toEqual(['Playwright skipped web.spec.ts › electron: The Electron binary is not installed', 'typecheck: ok, lint: ok', s.last]);
    expect(s.exitCode).toBe(0);
  });

  it('a failed beforeAll: the tests of its suite that never ran count as failed, an on-purpose skip beside it does not', () => {
    const s = summarize({
      vitest: [
        {
          name: 'tests/integration/proxyjump.test.ts',
          status: 'failed',
          tests: [t('behind a jump > one', 'skipped'), t('behind a jump > two', 'skipped'), t('other > runs', 'passed'), t('other > later', 'skipped')],
          suiteErrors: [{ name: 'behind a jump', message: 'network namespaces could not be set up' }],
        },
      ],
    });
    expect(s.last).toBe('2 passed, 2 failed, 2 skipped');
    expect(s.lines.join('\n')).toContain('behind a jump failed outside its tests (network namespaces could not be set up)');
    expect(s.exitCode).toBe(1);
  });

  it('a failed beforeAll at the top of a file: all of the file’s tests count as failed', () => {
    const name = 'tests/unit/b.test.ts';
    const s = summarize({
      vitest: [...GREEN_VITEST, { name, status: 'failed', message: 'top-level boom', tests: [t('x', 'skipped'), t('s > y', 'skipped')], suiteErrors: [{ name, message: 'top-level boom' }] }],
    });
    expect(s.last).toBe('3 passed, 2 failed, 2 skipped');
  });

  it('a failed afterAll after its tests passed counts 1', () => {
    const s = summarize({
      vitest: [{ name: 'tests/unit/c.test.ts', status: 'failed', tests: [t('d > z', 'passed')], suiteErrors: [{ name: 'd', message: 'after boom' }] }],
    });
    expect(s.last).toBe('2 passed, 1 failed, 1 skipped');
  });

  it('a test file that could not be imported counts 1, with or without the JUnit report', () => {
    const broken: VitestFile = {
      name: 'tests/unit/broken.test.ts',
      status: 'failed',
      message: "Cannot find module './gone' imported from /work/hitch/tests/unit/broken.test.ts",
      tests: [],
      suiteErrors: [{ name: 'tests/unit/broken.test.ts', message: "Cannot find module './gone'" }],
    };
    const s = summarize({ vitest: [...GREEN_VITEST, broken] });
    expect(s.last).toBe('3 passed, 1 failed, 2 skipped');
    expect(s.lines.join('\n')).toContain("tests/unit/broken.test.ts failed outside its tests (Cannot find module './gone')");
    // Without the JUnit report the file still counts, and so does the missing report.
    expect(summarize({ vitest: [...GREEN_VITEST, broken], vitestXml: false }).last).toBe('3 passed, 2 failed, 2 skipped');
  });

  it('vitest exiting non-zero with a clean report (an error outside any test) counts 1', () => {
    const s = summarize({ vitestStatus: 1 });
    expect(s.last).toBe('3 passed, 1 failed, 2 skipped');
    expect(s.lines.join('\n')).toContain('vitest exited 1 though no test or suite in its report failed');
  });

  it('a Playwright error outside tests (a spec file that failed to load) counts, though no test ran', () => {
    const s = summarize({ playwright: [], playwrightErrors: [{ message: "Error: Cannot find module './missing'" }], playwrightStatus: 1 });
    expect(s.last).toBe('2 passed, 1 failed, 1 skipped');
    expect(s.lines.join('\n')).toContain("Playwright: error outside tests: Error: Cannot find module './missing'");
  });

  it('Playwright: unexpected, timed-out, interrupted and did-not-run tests count as failed; flaky passes; an own skip is skipped', () => {
    const s = summarize({
      playwright: [
        { title: 'ok', status: 'expected' },
        { title: 'retried', status: 'flaky', results: ['failed', 'passed'] },
        { title: 'bad', status: 'unexpected', results: ['failed'] },
        { title: 'slow', status: 'unexpected', results: ['timedOut'] },
        { title: 'stopped', status: 'skipped', results: ['interrupted'] },
        { title: 'after a failed beforeAll', status: 'skipped', results: ['skipped'] },
        { title: 'never reached', status: 'skipped', results: [] },
        { title: 'skip on purpose', status: 'skipped', expectedStatus: 'skipped', results: ['skipped'] },
      ],
      playwrightStatus: 1,
    });
    expect(s.last).toBe('4 passed, 5 failed, 2 skipped');
  });

  it('a failed type-check or lint counts 1 each and is named on the line before', () => {
    const lint = summarize({ lint: 'eslint 1\n' });
    expect(lint.last).toBe('3 passed, 1 failed, 2 skipped');
    expect(lint.lines.at(-2)).toBe('typecheck: ok, lint: FAILED (eslint exited 1)');
    expect(lint.exitCode).toBe(1);
    const both = summarize({ typecheck: 'tsc 0\nsvelte-check 1\n', lint: 'eslint 2\n' });
    expect(both.last).toBe('3 passed, 2 failed, 2 skipped');
    expect(both.lines.at(-2)).toBe('typecheck: FAILED (svelte-check exited 1), lint: FAILED (eslint exited 2)');
  });

  it('a check that did not run, or a missing report, counts as failed', () => {
    const s = summarize({ typecheck: null, lint: null, playwright: null });
    expect(s.lines.at(-2)).toBe('typecheck: not run, lint: not run');
    expect(s.last).toBe('2 passed, 3 failed, 1 skipped');
  });
});

// Files replaced whole; what a process killed mid-save left behind is swept on the next save.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAtomically } from '../../main/engine/atomic-file';

const dir = mkdtempSync(join(tmpdir(), 'hitch-atomic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has certainly exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

describe('a file written atomically', () => {
  it('sweeps the temp files of a save killed midway, and only those', async () => {
    const file = join(dir, 'hosts.json');
    const dead = `.hosts.json.${deadPid()}.${randomUUID()}.tmp`;
    const live = `.hosts.json.${process.ppid}.${randomUUID()}.tmp`; // a live process's save in flight
    const other = `.settings.json.${deadPid()}.${randomUUID()}.tmp`; // another file's: left for its own next save
    for (const name of [dead, live, other]) writeFileSync(join(dir, name), 'half a file');
    await writeAtomically(file, '{"version":1}\n');
    expect(readFileSync(file, 'utf8')).toBe('{"version":1}\n');
    expect(readdirSync(dir).sort()).toEqual([live, other, 'hosts.json'].sort());
  });
});

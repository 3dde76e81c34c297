// An upload's file, read a block ahead (local-ends.ts fileSource): every request gets exactly the
// file's bytes at its offset, in order or not, and a file that ends early is an error, never
// short or stale data.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSource } from '../../main/engine/files/local-ends';

const CHUNK = 128 * 1024;
/** Two blocks of 2 MiB and a part of a third: reads cross block ends and stop at the file's. */
const SIZE = 5 * 1024 * 1024 + 12345;
let dir: string;
let path: string;
let content: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hitch-local-ends-'));
  path = join(dir, 'upload.bin');
  content = randomBytes(SIZE);
  await writeFile(path, content);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The requests pushRange makes from `from`: CHUNK at a time, the last one shorter. */
function requests(from: number, size: number, chunk = CHUNK): [number, number][] {
  const out: [number, number][] = [];
  for (let at = from; at < size; at += chunk) out.push([at, Math.min(chunk, size - at)]);
  return out;
}

describe("an upload's file source", () => {
  it('gives each request in order exactly the bytes at its offset, to the end of the file', async () => {
    const file = await open(path, 'r');
    try {
      const source = fileSource(file, path);
      const parts: Buffer[] = [];
      for (const [at, length] of requests(0, SIZE)) {
        const data = await source.read(at, length);
        expect(data.length).toBe(length);
        parts.push(Buffer.from(data));
      }
      expect(Buffer.concat(parts).equals(content)).toBe(true);
    } finally {
      await file.close();
    }
  });

  it('reads again from an earlier offset, as a resumed copy asks, and from odd offsets and sizes', async () => {
    const file = await open(path, 'r');
    try {
      const source = fileSource(file, path);
      for (const [at, length] of requests(0, 3 * 1024 * 1024)) await source.read(at, length);
      for (const [at, length] of [
        [CHUNK, CHUNK], // back before the blocks read so far
        [2 * 1024 * 1024 - 7, 100], // across a block's end
        [SIZE - 10, 10], // the file's last bytes
        [4 * 1024 * 1024 + 3, 3 * CHUNK + 1],
      ] as const) {
        expect((await source.read(at, length)).equals(content.subarray(at, at + length))).toBe(true);
      }
    } finally {
      await file.close();
    }
  });

  it('fails, naming the file and where it ended, when the file is shorter than the copy expects', async () => {
    const short = join(dir, 'shrinks.bin');
    await writeFile(short, content);
    const file = await open(short, 'r');
    try {
      const source = fileSource(file, short);
      await source.read(0, CHUNK); // the first block is read, the second read ahead
      // Cut inside the third block, which is read only once the second is reached: after this.
      const cut = 4 * 1024 * 1024 + 512 * 1024;
      await truncate(short, cut);
      let failure: Error | null = null;
      for (const [at, length] of requests(CHUNK, SIZE)) {
        const data = await source.read(at, length).catch((err: Error) => ((failure = err), null));
        if (!data) break;
        expect(data.equals(content.subarray(at, at + length))).toBe(true);
      }
      expect(failure).not.toBeNull();
      expect(failure!.message).toBe(`${short} ended at ${cut} bytes: it changed while being copied.`);
    } finally {
      await file.close();
    }
  });
});

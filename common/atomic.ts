import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * A path beside `target` to write into before renaming over it. Same directory, so the rename
 * is atomic on POSIX file systems; a dot-prefix and a random suffix keep it out of listings and
 * collision-free when two writers race.
 */
export function temporarySibling(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes a file atomically: a reader (or a crash) sees the old content or the new, never half. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = temporarySibling(target);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Builds a directory atomically: `fill` writes into a temporary sibling directory, which then
 * replaces `target` (the old one is removed only after the new one is complete).
 */
export async function writeDirAtomic(
  target: string,
  fill: (tmpDir: string) => Promise<void> | void,
): Promise<void> {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = temporarySibling(target);
  mkdirSync(tmp);
  try {
    await fill(tmp);
    const old = `${tmp}.old`;
    let moved = false;
    try {
      renameSync(target, old);
      moved = true;
    } catch {
      // no previous directory
    }
    renameSync(tmp, target);
    if (moved) rmSync(old, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

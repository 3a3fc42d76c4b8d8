/**
 * File-system checks shared by every room (issue 16): refuse what would hang or destroy input
 * (FIFOs and devices read as data, an output that is one of the inputs), tell live writers from
 * dead ones, and sweep the temporary files a killed writer left behind.
 */
import { readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { InputError } from './errors.js';

/** What kind of file system entry a stat result is, for messages. */
function kindOf(st: ReturnType<typeof statSync>): string {
  if (!st) return 'nothing';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Throws an InputError unless `path` is a regular file (following links). Opening a FIFO for
 * reading blocks until a writer appears, ignoring signals, so this runs before any open.
 */
export function assertRegularFile(path: string, what: string): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (err) {
    throw new InputError(`${path}: cannot read the ${what} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  if (!st?.isFile())
    throw new InputError(`${path}: expected the ${what} to be a regular file; it is ${kindOf(st)}`);
}

/** `path` with links resolved as far as it exists (the missing tail appended as given). */
function realish(path: string): string {
  let p = resolve(path);
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(p), ...tail);
    } catch {
      const up = dirname(p);
      if (up === p) return resolve(path);
      tail.unshift(p.slice(up.length + (up.endsWith(sep) ? 0 : 1)));
      p = up;
    }
  }
}

/**
 * Refuses an output that is an input, links to one (symbolic or hard link), or lies inside an
 * input folder (issue 16: `--out x.hdf5` replaced the user's HDF5 with Arrow).
 */
export function assertOutputIsNotInput(out: string, inputs: string[], flag = '--out'): void {
  const o = realish(out);
  let oStat: ReturnType<typeof statSync> | undefined;
  try {
    oStat = statSync(out);
  } catch {
    oStat = undefined;
  }
  for (const input of inputs) {
    const i = realish(input);
    let same = o === i || o.startsWith(i + sep);
    try {
      const iStat = statSync(input);
      if (oStat && iStat && oStat.dev === iStat.dev && oStat.ino === iStat.ino) same = true;
    } catch {
      // the input does not exist: the reader reports that
    }
    if (same)
      throw new InputError(
        `${flag} ${out}: is the input ${input} (or inside it, or a link to it); expected a new path, so the input is not overwritten`,
      );
  }
}

/** True when a process with this id exists (on this host). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * When the process started, in clock ticks since boot (Linux /proc/<pid>/stat field 22), so a
 * reused pid is not mistaken for the original process; undefined where /proc is missing.
 */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True when the process `pid` that started at `startTicks` (when known) is still running. */
export function ownerAlive(pid: number, startTicks?: string): boolean {
  if (!pidAlive(pid)) return false;
  if (startTicks === undefined) return true;
  const now = processStartTicks(pid);
  return now === undefined || now === startTicks;
}

/** Temporary siblings are `.<name>.<pid>.<8 hex>.tmp` (+ `.body`, `.old`): see atomic.ts. */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.body|\.old)?$/;

/**
 * Removes temporary siblings in `dir` whose writer (the pid in the name) is no longer running:
 * leftovers of a SIGKILL or a power cut, up to a dataset's size each. Returns the removed paths.
 */
export function sweepStaleTemporaries(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP_NAME.exec(n);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    rmSync(join(dir, n), { recursive: true, force: true });
    removed.push(join(dir, n));
  }
  return removed;
}

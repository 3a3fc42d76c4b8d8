/**
 * A run's lease: which process is writing it. `exp run --resume <id>` while the first process is
 * still alive logged every step twice (issue 16: 341 rows for 200 steps), so a run is leased to
 * one process at a time:
 *
 * - a lock file `<work>/locks/<run_id>.lock` (created with link(2), which fails if it exists, so
 *   two processes on one host cannot both take it) holding `{host, pid, startTicks}`;
 * - the run's tag `exp.owner` with the same JSON, so a process with another work folder on the
 *   same host sees the owner too.
 *
 * A lease whose process is gone (SIGKILL, power cut; checked by pid and its start time, so a
 * reused pid does not count) is stale and is taken over. Across hosts a pid cannot be checked:
 * that case is reported, not refused.
 */
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  InputError,
  ownerAlive,
  processStartTicks,
  sweepStaleTemporaries,
  temporarySibling,
} from '../../common/index.js';

/** Tag holding the lease of the process writing the run. */
export const OWNER_TAG = 'exp.owner';

export interface LeaseOwner {
  host: string;
  pid: number;
  /** Process start time in clock ticks since boot (Linux), to tell a reused pid apart. */
  startTicks?: string;
}

/** This process as a lease owner. */
export function currentOwner(): LeaseOwner {
  return { host: hostname(), pid: process.pid, startTicks: processStartTicks(process.pid) };
}

function parseOwner(text: string | undefined): LeaseOwner | undefined {
  if (!text) return undefined;
  try {
    const o = JSON.parse(text) as LeaseOwner;
    return typeof o?.host === 'string' && Number.isInteger(o.pid) ? o : undefined;
  } catch {
    return undefined;
  }
}

/** True when `owner` is a live process other than this one, on this host. */
function liveElsewhere(owner: LeaseOwner | undefined): boolean {
  return (
    !!owner &&
    owner.host === hostname() &&
    owner.pid !== process.pid &&
    ownerAlive(owner.pid, owner.startTicks)
  );
}

function refusal(runId: string, owner: LeaseOwner): InputError {
  return new InputError(
    `run ${runId} is still being written by process ${owner.pid} on ${owner.host}; resuming it now would log its steps twice. Stop that process first (kill ${owner.pid}); a lease left by a process that has died is taken over`,
  );
}

/**
 * Refuses (exit 2) when the run's `exp.owner` tag names a live process on this host. Returns a
 * warning line when the owner is on another host (its liveness cannot be checked from here).
 */
export function checkOwnerTag(runId: string, tagValue: string | undefined): string | undefined {
  const owner = parseOwner(tagValue);
  if (owner && liveElsewhere(owner)) throw refusal(runId, owner);
  if (owner && owner.host !== hostname())
    return `run ${runId} was last written by process ${owner.pid} on ${owner.host}; make sure it is no longer running`;
  return undefined;
}

export interface RunLease {
  owner: LeaseOwner;
  /** Removes the lock file (also done at process exit). */
  release(): void;
}

/** Takes the lease of `runId` in `lockDir`; an InputError when a live process holds it. */
export function acquireRunLease(runId: string, lockDir: string): RunLease {
  mkdirSync(lockDir, { recursive: true });
  sweepStaleTemporaries(lockDir);
  const lock = join(lockDir, `${runId}.lock`);
  const owner = currentOwner();
  const tmp = temporarySibling(lock);
  // Written whole before it gets its name: a reader never sees half a lease.
  writeFileSync(tmp, JSON.stringify(owner));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      }
      let held: LeaseOwner | undefined;
      try {
        held = parseOwner(readFileSync(lock, 'utf8'));
      } catch {
        held = undefined;
      }
      if (held && liveElsewhere(held)) throw refusal(runId, held);
      // Stale: its process is gone. Take it over.
      rmSync(lock, { force: true });
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      if (parseOwner(readFileSync(lock, 'utf8'))?.pid === process.pid) rmSync(lock, { force: true });
    } catch {
      // already gone
    }
  };
  process.once('exit', release);
  return { owner, release };
}

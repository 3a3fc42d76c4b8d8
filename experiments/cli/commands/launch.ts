/**
 * `exp launch --nproc N -- <command …>`: starts N local ranks of a multi-process ring (issue 9),
 * the way torchrun does: each child gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * MASTER_ADDR and MASTER_PORT, plus RING_LAUNCHER_PID (a rank aborts if its launcher dies) and a
 * fresh random RING_SECRET unless RING_SECRET or RING_SECRET_FILE is already set (never printed).
 *
 * Children's stdout passes through line by line; their stderr is prefixed `[rank k]`. When a rank
 * fails, the others get `--grace-ms` to notice on their own (the ring aborts them with a clear
 * error), then SIGTERM, then SIGKILL: no rank outlives the launcher. SIGINT/SIGTERM sent to the
 * launcher are forwarded. The exit code is 0 when every rank succeeds, else 1 with a line naming
 * the first rank that failed (130/143 when interrupted).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';

interface Args {
  nproc: number;
  'master-addr': string;
  'master-port'?: number;
  'grace-ms': number;
  '--'?: (string | number)[];
}

const EXP = fileURLToPath(new URL('../../../../bin/exp.js', import.meta.url));

/** A free TCP port on `host` (asked of the kernel; a small race with other programs remains). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** Forwards a child's stream line by line (so ranks' lines never interleave mid-line). */
function pipeLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  let buf = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) to.write(`${prefix}${l}\n`);
  });
  from.on('end', () => {
    if (buf) to.write(`${prefix}${buf}\n`);
  });
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

export const launchCommand: CommandModule<object, Args> = {
  command: 'launch',
  describe:
    'Start N local ranks of a multi-process ring: exp launch --nproc N -- exp ring-worker attention …',
  builder: (y: Argv) =>
    y
      .parserConfiguration({ 'populate--': true })
      .option('nproc', { type: 'number', demandOption: true, describe: 'Number of ranks N to start' })
      .option('master-addr', {
        type: 'string',
        default: '127.0.0.1',
        describe: "Rank 0's rendezvous address",
      })
      .option('master-port', { type: 'number', describe: "Rank 0's rendezvous port (default: a free port)" })
      .option('grace-ms', {
        type: 'number',
        default: 10_000,
        describe: 'After a rank fails, how long the others may take to stop on their own before SIGTERM',
      })
      .example(
        '$0 launch --nproc 2 -- exp ring-worker attention --seq-len 2048 --check',
        '',
      ) as unknown as Argv<Args>,
  handler: async (a) => {
    const N = a.nproc;
    if (!Number.isInteger(N) || N < 1)
      throw new InputError(`exp launch: --nproc must be a positive integer; got ${N}`);
    const cmd = (a['--'] ?? []).map(String);
    if (cmd.length === 0)
      throw new InputError('exp launch: name the command after --, e.g. -- exp ring-worker attention');
    const port = a['master-port'] ?? (await freePort(a['master-addr']));
    const [file, ...rest] = cmd[0] === 'exp' ? [process.execPath, EXP, ...cmd.slice(1)] : cmd;
    const secret =
      process.env.RING_SECRET === undefined && process.env.RING_SECRET_FILE === undefined
        ? { RING_SECRET: randomBytes(32).toString('hex') }
        : {};

    const children: ChildProcess[] = [];
    const exits: Promise<void>[] = [];
    let firstFailure: string | undefined;
    let interrupted: NodeJS.Signals | undefined;
    let stopping = false;
    const killTimers: NodeJS.Timeout[] = [];
    const alive = () => children.filter((c) => c.exitCode === null && c.signalCode === null);

    const stopOthers = (afterMs: number) => {
      if (stopping) return;
      stopping = true;
      killTimers.push(
        setTimeout(() => {
          for (const c of alive()) c.kill('SIGTERM');
          killTimers.push(
            setTimeout(() => {
              for (const c of alive()) c.kill('SIGKILL');
            }, 5000),
          );
        }, afterMs),
      );
    };

    for (let rank = 0; rank < N; rank++) {
      const child = spawn(file, rest, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          ...secret,
          RANK: String(rank),
          LOCAL_RANK: String(rank),
          WORLD_SIZE: String(N),
          LOCAL_WORLD_SIZE: String(N),
          MASTER_ADDR: a['master-addr'],
          MASTER_PORT: String(port),
          RING_LAUNCHER_PID: String(process.pid),
        },
      });
      children.push(child);
      process.stderr.write(`exp launch: rank ${rank} pid ${child.pid}\n`);
      pipeLines(child.stdout!, process.stdout, '');
      pipeLines(child.stderr!, process.stderr, `[rank ${rank}] `);
      exits.push(
        new Promise<void>((resolve) => {
          child.once('error', (err) => {
            firstFailure ??= `rank ${rank} could not start: ${err.message}`;
            stopOthers(0);
            resolve();
          });
          child.once('exit', (code, signal) => {
            if ((code !== 0 || signal) && !interrupted) {
              firstFailure ??= `rank ${rank} failed (${describeExit(code, signal)})`;
              stopOthers(a['grace-ms']);
            }
            resolve();
          });
        }),
      );
    }

    const forward = (sig: NodeJS.Signals) => {
      interrupted ??= sig;
      for (const c of alive()) c.kill(sig);
      stopOthers(a['grace-ms']);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    try {
      await Promise.all(exits);
    } finally {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      for (const t of killTimers) clearTimeout(t);
    }
    if (interrupted) {
      process.stderr.write(`exp launch: interrupted by ${interrupted}; all ${N} ranks stopped\n`);
      process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
    } else if (firstFailure) {
      process.stderr.write(`exp launch: ${firstFailure}; all ${N} ranks stopped\n`);
      process.exitCode = 1;
    }
  },
};

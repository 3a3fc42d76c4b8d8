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
 * the first rank that failed (130/143 when interrupted). A rank still running when the grace
 * period after a failure ends is named as stalled: the rank that failed first is usually the one
 * that noticed it (issue 16 item 10).
 *
 * `--launcher slurm --nodes K --nproc-per-node N` runs the same command as one SLURM job step
 * instead (issue 19): `srun` starts the K×N ranks, which read their rank from SLURM_PROCID and
 * rank 0's host from the step's node list (cluster/transport/env.ts); the launcher only picks the
 * rendezvous port and the shared secret and passes the exit code through.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { freeTcpPort, InputError } from '../../../common/index.js';
import { srunArgs } from '../../launchers/index.js';
import { countFlag, maxWorkerThreads } from '../options.js';

interface Args {
  nproc?: number;
  launcher: string;
  nodes: number;
  'nproc-per-node'?: number;
  partition?: string;
  time?: string;
  'cpus-per-task'?: number;
  'srun-arg'?: string[];
  'master-addr': string;
  'master-port'?: number;
  'grace-ms': number;
  '--'?: (string | number)[];
}

const EXP = fileURLToPath(new URL('../../../../bin/exp.js', import.meta.url));

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
    'Start the ranks of a multi-process ring: exp launch --nproc N -- exp ring-worker attention … (local), or --launcher slurm --nodes K --nproc-per-node N (one srun job step)',
  builder: (y: Argv) =>
    y
      .parserConfiguration({ 'populate--': true })
      .option('nproc', { type: 'number', describe: 'Number of ranks N to start (local; ≥ 2)' })
      .option('launcher', {
        type: 'string',
        default: 'local',
        describe: 'local (child processes) or slurm (srun: one job step of nodes × nproc-per-node ranks)',
      })
      .option('nodes', { type: 'number', default: 1, describe: 'slurm: nodes K' })
      .option('nproc-per-node', { type: 'number', describe: 'slurm: ranks per node N (default --nproc)' })
      .option('partition', { type: 'string', describe: 'slurm: --partition' })
      .option('time', { type: 'string', describe: 'slurm: --time limit of the step' })
      .option('cpus-per-task', { type: 'number', describe: 'slurm: CPUs per rank' })
      .option('srun-arg', {
        type: 'string',
        array: true,
        describe: 'slurm: extra srun option, e.g. --srun-arg=--account=lab (repeatable)',
      })
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
      .example('$0 launch --nproc 2 -- exp ring-worker attention --seq-len 2048 --check', '')
      .example(
        '$0 launch --launcher slurm --nodes 2 --nproc-per-node 4 -- exp ring-worker attention --check',
        '',
      ) as unknown as Argv<Args>,
  handler: async (a) => {
    if (a.launcher !== 'local' && a.launcher !== 'slurm')
      throw new InputError(`exp launch: --launcher must be local or slurm; got '${a.launcher}'`);
    const cmd = (a['--'] ?? []).map(String);
    if (cmd.length === 0)
      throw new InputError('exp launch: name the command after --, e.g. -- exp ring-worker attention');
    const [file, ...rest] = cmd[0] === 'exp' ? [process.execPath, EXP, ...cmd.slice(1)] : cmd;
    const secret: Record<string, string> =
      process.env.RING_SECRET === undefined && process.env.RING_SECRET_FILE === undefined
        ? { RING_SECRET: randomBytes(32).toString('hex') }
        : {};
    if (a.launcher === 'slurm') return launchSlurm(a, [file, ...rest], secret);
    const N = a.nproc;
    if (N === undefined) throw new InputError('exp launch: give --nproc N (the number of ranks)');
    if (!Number.isInteger(N) || N < 1)
      throw new InputError(`exp launch: --nproc must be a positive integer; got ${N}`);
    // NOTE: one rank has no ring to join; it used to wait out the 60 s rendezvous (issue 16 item 10)
    if (N < 2)
      throw new InputError(
        `exp launch: --nproc ${N}: a ring needs at least 2 ranks; run the command alone for one device`,
      );
    // NOTE: every local rank is a process of ≈ 200 MB (218 MiB measured for one bench device and
    // its main thread): 1,000 of them would take the machine down before any answer (issue 16)
    countFlag(N, 'exp launch: --nproc', {
      limit: maxWorkerThreads(200),
      why: "one process per local rank, ≈ 200 MB each, half of this machine's memory",
    });
    const port = a['master-port'] ?? (await freeTcpPort(a['master-addr']));

    const children: ChildProcess[] = [];
    const exits: Promise<void>[] = [];
    let firstFailure: string | undefined;
    let interrupted: NodeJS.Signals | undefined;
    let stopping = false;
    const killTimers: NodeJS.Timeout[] = [];
    const alive = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
    /** Ranks still running when the grace period after a failure ended: stalled, not failed. */
    const stalled: number[] = [];

    const stopOthers = (afterMs: number) => {
      if (stopping) return;
      stopping = true;
      killTimers.push(
        setTimeout(() => {
          if (!interrupted) stalled.push(...alive().map((c) => children.indexOf(c)));
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
      const blame = stalled.length
        ? `rank ${stalled.join(', ')} stalled (still running ${a['grace-ms']} ms after ${firstFailure}; stopped by the launcher)`
        : firstFailure;
      process.stderr.write(`exp launch: ${blame}; all ${N} ranks stopped\n`);
      process.exitCode = 1;
    }
  },
};

/** Environment variables that would make a rank ignore SLURM's (explicit RANK/WORLD_SIZE win). */
const LOCAL_RANK_VARS = [
  'RANK',
  'WORLD_SIZE',
  'LOCAL_RANK',
  'LOCAL_WORLD_SIZE',
  'MASTER_ADDR',
  'RING_LAUNCHER_PID',
];

/** `--launcher slurm`: the ranks as one `srun` job step; srun's exit code is ours. */
async function launchSlurm(a: Args, command: string[], secret: Record<string, string>): Promise<void> {
  const K = a.nodes;
  const N = a['nproc-per-node'] ?? a.nproc;
  if (!Number.isInteger(K) || K < 1)
    throw new InputError(`exp launch: --nodes must be a positive integer; got ${K}`);
  if (N === undefined || !Number.isInteger(N) || N < 1)
    throw new InputError(
      `exp launch --launcher slurm: --nproc-per-node must be a positive integer; got ${N}`,
    );
  if (K * N < 2)
    throw new InputError(
      `exp launch --launcher slurm: ${K} node × ${N} rank: a ring needs at least 2 ranks; run the command alone for one device`,
    );
  // Rank 0's port: free here when the step runs on this host; on a cluster, one high port per job
  // (MASTER_PORT overrides, as for torchrun).
  const port =
    a['master-port'] ??
    (process.env.MASTER_PORT ? Number(process.env.MASTER_PORT) : 20_000 + Math.floor(Math.random() * 30_000));
  const env: NodeJS.ProcessEnv = { ...process.env, ...secret, MASTER_PORT: String(port) };
  for (const v of LOCAL_RANK_VARS) delete env[v];
  let argv = command;
  if (K > 1) {
    // ranks on other nodes connect over the network: listen on every interface and publish the
    // node's name (SLURMD_NODENAME, set per task by slurmd), unless the user chose addresses
    env.RING_BIND_ADDR ??= '0.0.0.0';
    const advertise = 'export RING_ADVERTISE_ADDR="$' + '{RING_ADVERTISE_ADDR:-$SLURMD_NODENAME}"; exec "$@"';
    argv = ['/bin/sh', '-c', advertise, 'sh', ...command];
  }
  const args = [
    ...srunArgs({
      nodes: K,
      tasksPerNode: N,
      cpusPerTask: a['cpus-per-task'],
      partition: a.partition,
      time: a.time,
      extra: a['srun-arg'] ?? [],
    }),
    ...argv,
  ];
  process.stderr.write(`exp launch: srun ${args.join(' ')} (${K * N} ranks, rendezvous port ${port})\n`);
  const child = spawn('srun', args, { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(
        `exp launch: cannot run srun: ${err.message} (is this a SLURM login node? scripts/slurm-cluster.sh starts a test cluster)\n`,
      );
      resolve(2);
    });
    child.once('exit', (c, signal) => resolve(c ?? (signal === 'SIGINT' ? 130 : 143)));
  });
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (code !== 0) process.stderr.write(`exp launch: srun exited with code ${code}\n`);
  process.exitCode = code;
}

/**
 * The `exp` command. Every subcommand is a yargs command module listed in commands/index.ts.
 * Exit codes: 0 success, 2 usage or input error (bad flag, file, key), 1 anything else.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname } from 'node:path';
import yargs from 'yargs';
import { errorMessage, isInputError } from '../../common/index.js';
import { commands } from './commands/index.js';

class UsageError extends Error {}

/**
 * File-system failures caused by where the user pointed us (a full or read-only disk, a path
 * through a file, no permission): exit 2 with the path, not a stack trace (issue 16).
 */
const INPUT_ERRNOS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'expected a file; it is a folder',
  EFBIG: 'the file would be too large',
};

/**
 * A size the user asked for that cannot be allocated (`--seq-len 1e12`, a huge config value):
 * exit 2 saying so instead of a stack trace (issue 16). The recipe or command that allocates
 * should bound its sizes first; this is the net under it.
 */
function allocationInputError(err: unknown): string | undefined {
  const m =
    err instanceof Error
      ? /(Invalid (typed )?array length[^\n]*|Array buffer allocation failed|Array buffer too large|Invalid string length)/.exec(
          err.message,
        )
      : null;
  if (!m) return undefined;
  const gb = (totalmem() / 2 ** 30).toFixed(0);
  return `the sizes asked for need more memory than this machine can allocate (${m[1]}); expected sizes that fit in its ${gb} GiB: reduce the sequence length, batch, model or device count`;
}

/**
 * Node 20's recursive mkdir reports a folder it cannot create on a read-only file system as
 * ENOENT (a plain mkdir says EROFS), so `--tracking-uri /ro/mlruns` died with a stack trace and
 * exit 1 (issue 16 item 14). The nearest folder that exists says why: access(W_OK) fails with
 * EROFS (root included) or EACCES there.
 */
function mkdirCause(e: NodeJS.ErrnoException): string | undefined {
  if (e.code !== 'ENOENT' || e.syscall !== 'mkdir' || !e.path) return undefined;
  let dir = dirname(e.path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code && INPUT_ERRNOS[code]) return code;
  }
  return undefined;
}

function fsInputError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException;
  const cause = e ? mkdirCause(e) : undefined;
  if (cause)
    return `${e.path}: cannot create the folder: ${INPUT_ERRNOS[cause]} (${cause} in mkdir); expected a writable path with free space`;
  const why = e?.code ? INPUT_ERRNOS[e.code] : undefined;
  if (!why) return undefined;
  return `${e.path ? `${e.path}: ` : ''}${why} (${e.code}${e.syscall ? ` in ${e.syscall}` : ''}); expected a writable path with free space${e.path ? '' : ` (${e.message})`}`;
}

export async function main(argv: string[]): Promise<number> {
  const parser = yargs(argv)
    .scriptName('exp')
    .usage(
      '$0 <command> [options]\n\nRing Attention with Blockwise Transformers: experiments, benchmarks and tools.',
    )
    .command(commands)
    .demandCommand(1, 'exp: name a command (exp --help lists them)')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });
  try {
    await parser.parseAsync();
    // A command may set a non-zero exit code without failing (a run ended KILLED: 130).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n(exp --help lists the commands and their options)\n`);
      return 2;
    }
    if (isInputError(err)) {
      process.stderr.write(`exp: ${errorMessage(err)}\n`);
      return 2;
    }
    const fsError = fsInputError(err) ?? allocationInputError(err);
    if (fsError) {
      process.stderr.write(`exp: ${fsError}\n`);
      return 2;
    }
    process.stderr.write(`exp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

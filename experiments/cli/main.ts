/**
 * The `exp` command. Every subcommand is a yargs command module listed in commands/index.ts.
 * Exit codes: 0 success, 2 usage or input error (bad flag, file, key), 1 anything else.
 */
import yargs from 'yargs';
import { errorMessage, isInputError } from '../../common/index.js';
import { commands } from './commands/index.js';

class UsageError extends Error {}

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
    process.stderr.write(`exp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

/** `exp bench <what>`: benchmarks that print one JSON object with --json. */
import type { Argv, CommandModule } from 'yargs';
import { benchAttentionCommand } from './attention.js';
import { benchEnvCommand } from './env.js';
import { benchMatmulCommand } from './matmul.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules differ in their argument types
const benches: CommandModule<any, any>[] = [benchAttentionCommand, benchEnvCommand, benchMatmulCommand];

export const benchCommand: CommandModule = {
  command: 'bench <what>',
  describe: 'Run a benchmark (attention, ...) and print its result',
  builder: (y: Argv) => y.command(benches).demandCommand(1, 'exp bench: name a benchmark'),
  handler: () => {},
};

/** Top-level `exp` commands, one module each; `exp --help` lists them with their one-line description. */
import type { CommandModule } from 'yargs';
import { benchCommand } from './bench/index.js';
import { dataCommand } from './data.js';
import { envCommand } from './env.js';
import { launchCommand } from './launch.js';
import { planCommand } from './plan.js';
import { rolloutCommand } from './rollout.js';
import { ringWorkerCommand } from './ring-worker.js';
import { runCommand } from './run.js';
import { runsCommand } from './runs.js';
import { sweepCommand } from './sweep.js';
import { uiCommand } from './ui.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules differ in their argument types
export const commands: CommandModule<any, any>[] = [
  benchCommand,
  dataCommand,
  envCommand,
  launchCommand,
  planCommand,
  ringWorkerCommand,
  rolloutCommand,
  runCommand,
  runsCommand,
  sweepCommand,
  uiCommand,
];

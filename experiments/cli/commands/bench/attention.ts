/** `exp bench attention`: placeholder replaced below in this commit series. */
import type { CommandModule } from 'yargs';

export const benchAttentionCommand: CommandModule = {
  command: 'attention',
  describe: 'Time one attention implementation forward (and backward) and print JSON',
  handler: () => {
    throw new Error('exp bench attention: not built yet');
  },
};

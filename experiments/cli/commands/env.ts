/** `exp env list` and `exp env check <EnvId>`: the registered environments and their contract check (issue 4). */
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { checkEnv, make, mujocoVersion, registeredIds, registration } from '../../../rl/envs/index.js';

/** Parses `--kwargs '{"include_cfrc_ext_in_observation": false}'`. */
export function parseKwargsFlag(text: string | undefined): Record<string, unknown> {
  if (text === undefined || text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InputError(
      `--kwargs: expected a JSON object; got ${JSON.stringify(text)} (${(err as Error).message})`,
    );
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new InputError(`--kwargs: expected a JSON object; got ${text}`);
  return v as Record<string, unknown>;
}

interface ListArgs {
  json: boolean;
}
interface CheckArgs {
  id: string;
  kwargs?: string;
  json: boolean;
}

const list: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'List the registered environments with spaces, time limits and keywords',
  builder: (y: Argv) =>
    y.option('json', {
      type: 'boolean',
      default: false,
      describe: 'Print one JSON object',
    }) as unknown as Argv<ListArgs>,
  handler: (args) => {
    const rows = registeredIds().map((id) => {
      const reg = registration(id);
      const env = make(id);
      const row = {
        id,
        description: reg.description,
        observationSpace: env.observationSpace.toString(),
        actionSpace: env.actionSpace.toString(),
        maxEpisodeSteps: reg.maxEpisodeSteps ?? null,
        rewardThreshold: reg.rewardThreshold ?? null,
        kwargs: Object.fromEntries(Object.entries(reg.kwargs).map(([k, s]) => [k, s.default])),
      };
      env.close();
      return row;
    });
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ mujoco: mujocoVersion(), envs: rows })}\n`);
      return;
    }
    const lines = rows.map(
      (r) =>
        `${r.id.padEnd(16)} obs ${r.observationSpace}  action ${r.actionSpace}  limit ${r.maxEpisodeSteps ?? '-'}\n${' '.repeat(17)}${r.description}; keywords: ${Object.keys(r.kwargs).join(', ') || '-'}`,
    );
    process.stdout.write(`${lines.join('\n')}\n(MuJoCo ${mujocoVersion()}, WebAssembly)\n`);
  },
};

const check: CommandModule<object, CheckArgs> = {
  command: 'check <id>',
  describe: 'Run the env checker (reset/step contract, seeding, determinism, bad actions) on one env',
  builder: (y: Argv) =>
    y
      .positional('id', { type: 'string', demandOption: true, describe: 'Env id, e.g. Ant-v5' })
      .option('kwargs', { type: 'string', describe: 'Env keywords as a JSON object' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print one JSON object',
      }) as unknown as Argv<CheckArgs>,
  handler: (args) => {
    const env = make<unknown, unknown>(args.id, parseKwargsFlag(args.kwargs));
    // The checker sees the env as `make` returns it (with OrderEnforcing and TimeLimit); the
    // wrapped-env warning is expected here.
    const report = checkEnv(env);
    const warnings = report.warnings.filter((w) => !w.includes('is wrapped'));
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ id: args.id, ok: true, passed: report.passed, warnings })}\n`);
      return;
    }
    process.stdout.write(
      `${args.id}: ok (${report.passed.join(', ')})${warnings.map((w) => `\nwarning: ${w}`).join('')}\n`,
    );
  },
};

export const envCommand: CommandModule = {
  command: 'env <action>',
  describe: 'Environments: list the registered ones, check one against the Gymnasium contract',
  builder: (y: Argv) =>
    y.command([list, check] as CommandModule[]).demandCommand(1, 'exp env: name an action (list, check)'),
  handler: () => {},
};

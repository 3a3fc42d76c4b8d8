/**
 * `exp rollout view|video <source>` (issue 18): the replay page or a video of recorded evaluation
 * episodes. The source is a run id (or a unique start of one) whose evaluations logged
 * `rollouts/step-<N>/rollouts.arrow` (eval.record), a rollout .arrow file, or a PPO policy file
 * (`ring-ppo-policy/1` JSON, e.g. rl/behavior/levels/ant-v5/snap-280.json) that is rolled out here.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { readRollouts, recordPolicy, type Rollouts } from '../../../rl/rollout/index.js';
import {
  findRolloutsArtifact,
  renderVideo,
  requireBrowserTools,
  writeReplayPage,
} from '../../rollout/index.js';
import { openStore, resolveTrackingUri } from '../../tracking/index.js';
import { findRun } from './runs.js';

interface RolloutArgs {
  action: 'view' | 'video';
  source: string;
  out?: string;
  'tracking-uri'?: string;
  step?: number;
  episode: number;
  episodes: number;
  seed: number;
  deterministic: boolean;
  'max-steps'?: number;
  width: number;
  height: number;
  every: number;
  follow: boolean;
  gif?: string;
  'gif-width': number;
  'gif-fps'?: number;
  open?: boolean;
}

/** What the source names, loaded: the rollouts and a short name for default output files. */
async function loadSource(a: RolloutArgs, who: string): Promise<{ rollouts: Rollouts; name: string }> {
  const src = a.source;
  if (existsSync(src) && statSync(src).isFile()) {
    const head = readFileSync(src).subarray(0, 64).toString('utf8').trimStart();
    const name = src.replace(/^.*\//, '').replace(/\.[^.]*$/, '');
    if (head.startsWith('{')) {
      const rollouts = recordPolicy(src, {
        episodes: a.episodes,
        seed: a.seed,
        stochastic: !a.deterministic,
        maxEpisodeSteps: a['max-steps'],
      });
      return { rollouts, name };
    }
    return { rollouts: readRollouts(src), name };
  }
  if (!/^[0-9a-f]{1,32}$/.test(src))
    throw new InputError(
      `${who}: <source> '${src}': no such file, and not a run id (hex); give a run id, a rollouts .arrow file or a PPO policy .json file`,
    );
  const store = openStore(resolveTrackingUri(a['tracking-uri']), { readOnly: true });
  const run = await findRun(store, src, `${who}: <source>`);
  const path = await findRolloutsArtifact(store, run.info.runId, a.step);
  const dir = mkdtempSync(join(tmpdir(), 'ring-rollout-'));
  try {
    const local = join(dir, 'rollouts.arrow');
    await store.downloadArtifact(run.info.runId, path, local);
    const rollouts = readRollouts(local);
    rollouts.source = { ...rollouts.source, run: run.info.runId, artifact: path };
    return { rollouts, name: `${run.info.runId.slice(0, 8)}-${path.split('/')[1]}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether a desktop can show a browser here (a display, and xdg-open to start one). */
function canOpen(): boolean {
  if (process.platform === 'darwin') return true;
  return Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
}

function openFile(path: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : 'xdg-open';
  try {
    const p = spawn(cmd, [path], { stdio: 'ignore', detached: true });
    p.on('error', () => undefined);
    p.unref();
  } catch {
    // no opener: the printed path is enough
  }
}

export const rolloutCommand: CommandModule<object, RolloutArgs> = {
  command: 'rollout <action> <source>',
  describe:
    'Replay page (view) or MP4/GIF (video) of evaluation episodes: of a run, a rollouts file or a policy',
  builder: (y: Argv) =>
    y
      .positional('action', {
        choices: ['view', 'video'] as const,
        describe: 'view: write (and open) the replay page; video: render an MP4',
      })
      .positional('source', {
        type: 'string',
        describe: 'Run id (or a unique start), rollouts .arrow file, or PPO policy .json file',
      })
      .option('out', { type: 'string', describe: 'Output file (default: rollout-<source>.html / .mp4 here)' })
      .option('tracking-uri', {
        type: 'string',
        describe: 'MLflow server URL or file-store folder (run sources)',
      })
      .option('step', { type: 'number', describe: 'Which evaluation of a run (default: the last recorded)' })
      .option('episode', {
        type: 'number',
        default: 0,
        describe: 'video: which recorded episode (0: the first kept)',
      })
      .option('episodes', {
        type: 'number',
        default: 1,
        describe: 'policy: episodes to roll out (first, best and worst are kept)',
      })
      .option('seed', { type: 'number', default: 1000, describe: 'policy: seed of the first episode' })
      .option('deterministic', {
        type: 'boolean',
        default: false,
        describe: 'policy: mean actions instead of samples',
      })
      .option('max-steps', { type: 'number', describe: 'policy: cap on episode length' })
      .option('width', { type: 'number', default: 640, describe: 'video: frame width (even)' })
      .option('height', { type: 'number', default: 400, describe: 'video: frame height (even)' })
      .option('every', { type: 'number', default: 1, describe: 'video: render every n-th step' })
      .option('follow', {
        type: 'boolean',
        default: true,
        describe: 'video: camera follows the body (--no-follow: fixed)',
      })
      .option('gif', { type: 'string', describe: 'video: also write a GIF to this path' })
      .option('gif-width', { type: 'number', default: 320, describe: 'video: GIF width in pixels' })
      .option('gif-fps', {
        type: 'number',
        describe: 'video: GIF frames per second (default: the video’s, at most 15)',
      })
      .option('open', {
        type: 'boolean',
        describe: 'view: open the page in a browser (default: when a display exists)',
      }) as unknown as Argv<RolloutArgs>,
  handler: async (args) => {
    const who = `exp rollout ${args.action}`;
    for (const k of ['episode', 'episodes', 'width', 'height', 'every', 'gif-width', 'seed'] as const)
      if (!Number.isInteger(args[k]) || args[k] < (k === 'episode' || k === 'seed' ? 0 : 1))
        throw new InputError(
          `${who}: --${k} must be a ${k === 'episode' || k === 'seed' ? 'non-negative' : 'positive'} integer; got ${args[k]}`,
        );
    const gifFps = args['gif-fps'];
    if (gifFps !== undefined && !(gifFps > 0 && gifFps <= 50))
      throw new InputError(`${who}: --gif-fps must be a number in (0, 50]; got ${gifFps}`);
    const { rollouts, name } = await loadSource(args, who);
    if (args.action === 'view') {
      const out = resolve(args.out ?? `rollout-${name}.html`);
      writeReplayPage(out, rollouts);
      process.stdout.write(`replay page: ${out}\n`);
      if (args.open ?? canOpen()) openFile(out);
      return;
    }
    if (args.episode >= rollouts.episodes.length)
      throw new InputError(
        `${who}: --episode ${args.episode}: the rollouts have ${rollouts.episodes.length} episodes (0–${rollouts.episodes.length - 1})`,
      );
    const out = resolve(args.out ?? `rollout-${name}.mp4`);
    const tools = requireBrowserTools(who);
    const dir = mkdtempSync(join(tmpdir(), 'ring-rollout-page-'));
    try {
      const page = join(dir, 'replay.html');
      writeReplayPage(page, rollouts);
      const ep = rollouts.episodes[args.episode];
      let shown = -1;
      const r = await renderVideo(
        page,
        out,
        {
          width: args.width,
          height: args.height,
          episode: args.episode,
          every: args.every,
          follow: args.follow,
          gif: args.gif ? resolve(args.gif) : undefined,
          gifWidth: args['gif-width'],
          gifFps: args['gif-fps'],
          onFrame: (done, total) => {
            const pct = Math.floor((100 * done) / total / 10);
            if (pct !== shown && process.stderr.isTTY) process.stderr.write(`\rframes ${done}/${total}`);
            shown = pct;
          },
        },
        tools,
      );
      if (process.stderr.isTTY) process.stderr.write('\n');
      process.stdout.write(
        `video: ${out} (${r.frames} frames, ${r.width}×${r.height}, ${r.fps} fps; ${rollouts.envId} episode ${ep.index} [${ep.labels.join(', ')}], return ${ep.return.toFixed(1)}, ${r.steps} steps)\n`,
      );
      if (args.gif) process.stdout.write(`gif: ${resolve(args.gif)}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

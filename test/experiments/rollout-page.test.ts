/**
 * The replay page and videos in a real headless Chromium (issue 18): frames are not blank, the
 * body moves between frames, and the tracked body's pixels sit where an independent pinhole
 * projection of the recorded state (with the camera the page reports) puts them, for every task;
 * the MP4 decodes with the expected frame count and size; `exp rollout view|video` as a user
 * calls them, on a policy file, a rollouts file and a run, and exit code 2 on bad input.
 * Chromium and ffmpeg come from scripts/browser-env.sh; the tests skip only when it cannot
 * install them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../../common/index.js';
import { boxSpace, writeEpisodes } from '../../datasets/index.js';
import {
  type BrowserPage,
  type BrowserTools,
  browserTools,
  HeadlessChromium,
  renderVideo,
  writeReplayPage,
} from '../../experiments/rollout/index.js';
import { make } from '../../rl/envs/index.js';
import {
  type MujocoScene,
  type RecordedEpisode,
  RolloutRecorder,
  type Rollouts,
  recordPolicy,
  writeRollouts,
} from '../../rl/rollout/index.js';
import { outcome, repoRoot, runExp, tempDir, testEnv } from './util.js';

const work = tempDir('rollout');
after(() => rmSync(work, { recursive: true, force: true }));
const tools = browserTools();
const skip = 'unavailable' in tools ? `chromium/ffmpeg unavailable: ${tools.unavailable}` : undefined;
const W = 320;
const H = 240;
/** The page draws the followed body in this colour (player.js's TRACK_COLOR). */
const TRACK = [0xe8, 0x77, 0x2e];

/** RGB pixels of a PNG, decoded by ffmpeg (rgb24, row-major). */
function decodePng(png: Buffer): Uint8Array {
  const r = spawnSync(
    (tools as BrowserTools).ffmpeg,
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'png_pipe',
      '-i',
      'pipe:0',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      'pipe:1',
    ],
    { input: png, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`ffmpeg could not decode the screenshot: ${r.stderr}`);
  assert.equal(r.stdout.length, W * H * 3, 'screenshot size');
  return new Uint8Array(r.stdout);
}

/** Centroid and count of the pixels of colour `c` (±10 per channel: antialiased edges excluded). */
function colourCentroid(px: Uint8Array, c: number[]): { x: number; y: number; n: number } {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let i = 0; i < W * H; i++)
    if (
      Math.abs(px[3 * i] - c[0]) <= 10 &&
      Math.abs(px[3 * i + 1] - c[1]) <= 10 &&
      Math.abs(px[3 * i + 2] - c[2]) <= 10
    ) {
      sx += i % W;
      sy += Math.floor(i / W);
      n++;
    }
  // pixel centres are at +0.5
  return { x: sx / n + 0.5, y: sy / n + 0.5, n };
}

/** Pixels whose colour differs between two frames by more than 30 in some channel. */
function changedPixels(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < W * H; i++)
    if (
      Math.max(
        Math.abs(a[3 * i] - b[3 * i]),
        Math.abs(a[3 * i + 1] - b[3 * i + 1]),
        Math.abs(a[3 * i + 2] - b[3 * i + 2]),
      ) > 30
    )
      n++;
  return n;
}

/** Pixels that differ from the frame's most common colour (the background). */
function foregroundPixels(px: Uint8Array): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < W * H; i++) {
    const k = (px[3 * i] << 16) | (px[3 * i + 1] << 8) | px[3 * i + 2];
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return W * H - Math.max(...counts.values());
}

interface PerspectiveCamera {
  kind: 'perspective';
  eye: number[];
  target: number[];
  up: number[];
  fovy: number;
  width: number;
  height: number;
}
interface FlatCamera {
  kind: '2d';
  scale: number;
  originX: number;
  originY: number;
}

/**
 * The reference: the pixel of world point p through a pinhole camera looking from `eye` at
 * `target` (x right, y down, focal length from the vertical field of view), written here from
 * the textbook, not from the page.
 */
function project(cam: PerspectiveCamera, p: number[]): [number, number] {
  const v = (a: number[], b: number[]) => a.map((x, i) => x - b[i]);
  const len = (a: number[]) => Math.hypot(...a);
  const unit = (a: number[]) => a.map((x) => x / len(a));
  const crossP = (a: number[], b: number[]) => [
    a[1] * b[2] - a[2] * b[1],
    a[2] * b[0] - a[0] * b[2],
    a[0] * b[1] - a[1] * b[0],
  ];
  const dotP = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  const zAxis = unit(v(cam.target, cam.eye));
  const xAxis = unit(crossP(zAxis, cam.up));
  const yAxis = crossP(xAxis, zAxis);
  const d = v(p, cam.eye);
  const focal = cam.height / 2 / Math.tan((cam.fovy * Math.PI) / 360);
  const z = dotP(d, zAxis);
  return [cam.width / 2 + (focal * dotP(d, xAxis)) / z, cam.height / 2 - (focal * dotP(d, yAxis)) / z];
}

/** Rotation matrix (rows) of a unit quaternion (w, x, y, z). */
function rotation([w, x, y, z]: number[]): number[][] {
  return [
    [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
  ];
}
const apply = (R: number[][], v: number[]) => R.map((row) => row[0] * v[0] + row[1] * v[1] + row[2] * v[2]);
const matmul = (A: number[][], B: number[][]) =>
  A.map((row) => [0, 1, 2].map((j) => row[0] * B[0][j] + row[1] * B[1][j] + row[2] * B[2][j]));

/** A round-ended segment in pixels (a sphere when a = b). */
interface PixelCapsule {
  a: [number, number];
  b: [number, number];
  r: number;
}

/**
 * The tracked body's geoms (spheres and capsules) at step t as pixel capsules: each geom's world
 * pose from the recorded body pose and the geom's offset, its axis ends projected, its radius
 * scaled by focal length over depth.
 */
function trackedCapsules(
  scene: MujocoScene,
  ep: RecordedEpisode,
  t: number,
  cam: PerspectiveCamera,
): PixelCapsule[] {
  const b = scene.trackBody;
  const s = ep.states[t];
  const Rb = rotation(Array.from(s.xquat!.subarray(4 * b, 4 * b + 4)));
  const pb = Array.from(s.xpos!.subarray(3 * b, 3 * b + 3));
  const focal = cam.height / 2 / Math.tan((cam.fovy * Math.PI) / 360);
  const depth = (p: number[]) => {
    const f = cam.target.map((x, i) => x - cam.eye[i]);
    const n = Math.hypot(...f);
    return f.reduce((acc, x, i) => acc + (x / n) * (p[i] - cam.eye[i]), 0);
  };
  return scene.geoms
    .filter((g) => g.body === b)
    .map((g) => {
      const centre = apply(Rb, g.pos).map((x, i) => x + pb[i]);
      const axis = apply(matmul(Rb, rotation(g.quat)), [0, 0, 1]);
      const half = g.type === 'capsule' || g.type === 'cylinder' ? g.size[1] : 0;
      const end = (sign: number) =>
        project(
          cam,
          centre.map((x, i) => x + sign * half * axis[i]),
        );
      return { a: end(1), b: end(-1), r: (focal * g.size[0]) / depth(centre) };
    });
}

/** Centroid of the pixels (centres) inside any of `inside` and outside all of `outside`. */
function silhouetteCentroid(inside: PixelCapsule[], outside: PixelCapsule[] = []): { x: number; y: number } {
  const within = (c: PixelCapsule, x: number, y: number) => {
    const [dx, dy] = [c.b[0] - c.a[0], c.b[1] - c.a[1]];
    const len2 = dx * dx + dy * dy;
    const u = len2 ? Math.max(0, Math.min(1, ((x - c.a[0]) * dx + (y - c.a[1]) * dy) / len2)) : 0;
    return Math.hypot(x - c.a[0] - u * dx, y - c.a[1] - u * dy) <= c.r;
  };
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let y = 0.5; y < H; y++)
    for (let x = 0.5; x < W; x++)
      if (inside.some((c) => within(c, x, y)) && !outside.some((c) => within(c, x, y))) {
        sx += x;
        sy += y;
        n++;
      }
  return { x: sx / n, y: sy / n };
}

/** Seeded random-action episodes of `envId`, recorded (the first is kept). */
function recordRandom(envId: string, steps: number, seed: number): Rollouts {
  const env = make<ArrayLike<number>, number | Float32Array>(envId, {}, { maxEpisodeSteps: steps });
  const rec = new RolloutRecorder(['first']);
  const rng = new Rng(seed);
  const space = env.actionSpace as unknown as { n?: number; low?: Float32Array; high?: Float32Array };
  env.reset({ seed });
  rec.reset(env, seed);
  for (;;) {
    const a =
      space.n !== undefined
        ? rng.int(space.n)
        : Float32Array.from(space.low!, (lo, i) => lo + (space.high![i] - lo) * rng.next());
    const [, r, term, trunc] = env.step(a);
    rec.step(env, r, term || trunc);
    if (term || trunc) break;
  }
  env.close();
  return rec.result();
}

const seed = Date.now() % 100000;
const level = (env: string, update: number) =>
  join(repoRoot, 'rl', 'behavior', 'levels', env, `snap-${update}.json`);
const medium = (env: string) =>
  (
    JSON.parse(readFileSync(join(repoRoot, 'rl', 'behavior', 'levels', env, 'levels.json'), 'utf8')) as {
      medium: { update: number };
    }
  ).medium.update;

/** Per task: its recorded episode, a step to compare with step 0, and the pixel tolerance. */
type Episode = Rollouts['episodes'][number];
/** The step (≥ 5) whose rod angle is farthest from step 0's: a swinging pendulum can come back
 *  to its starting angle at any fixed step, and then two frames are honestly the same. */
const farthestSwing = (ep: Episode): number => {
  const gap = (i: number) => {
    const d = ep.states[i].qpos[0] - ep.states[0].qpos[0];
    return Math.abs(Math.atan2(Math.sin(d), Math.cos(d)));
  };
  let best = 5;
  for (let i = 5; i < ep.states.length; i++) if (gap(i) > gap(best)) best = i;
  return best;
};

const cases: {
  name: string;
  rollouts: () => Rollouts;
  /** the step compared with step 0: a number (0 = the episode's last step) or chosen per episode */
  k: number | ((ep: Episode) => number);
  tolerance: number;
  query?: string;
}[] = [
  {
    name: 'Ant-v5 (shipped medium policy)',
    rollouts: () =>
      recordPolicy(level('ant-v5', medium('ant-v5')), {
        episodes: 1,
        seed,
        stochastic: true,
        maxEpisodeSteps: 40,
      }),
    // it runs about 1.5 m/s: after 10 steps (0.5 s) it is still in the fixed camera's view
    k: 10,
    tolerance: 1.5,
  },
  {
    name: 'Hopper-v5 (shipped medium policy)',
    rollouts: () =>
      recordPolicy(level('hopper-v5', medium('hopper-v5')), {
        episodes: 1,
        seed,
        stochastic: true,
        maxEpisodeSteps: 40,
      }),
    k: 40,
    tolerance: 1.5,
  },
  // its torso and head are capsules of radius 0.046 m, ~3 px wide here: antialiased edges (left
  // out of the colour match) are a large share of their pixels
  {
    name: 'HalfCheetah-v5 (random actions)',
    rollouts: () => recordRandom('HalfCheetah-v5', 40, seed),
    k: 40,
    tolerance: 2,
  },
  {
    name: 'Walker2d-v5 (random actions)',
    rollouts: () => recordRandom('Walker2d-v5', 30, seed),
    k: 0,
    tolerance: 1.5,
  },
  // no cap that matters: the episode ends when the pole has fallen past 12° (or the cart left)
  {
    name: 'CartPole-v1 (random actions)',
    rollouts: () => recordRandom('CartPole-v1', 500, seed),
    k: 0,
    tolerance: 1.5,
  },
  {
    name: 'Pendulum-v1 (random actions)',
    rollouts: () => recordRandom('Pendulum-v1', 60, seed),
    k: farthestSwing,
    tolerance: 1.5,
  },
];

describe('replay page in headless Chromium', { skip }, () => {
  let browser: HeadlessChromium;
  before(() => {
    browser = HeadlessChromium.launch({ executable: (tools as BrowserTools).chromium });
  });
  after(async () => {
    await browser?.close();
  });

  for (const c of cases)
    test(`${c.name}: frames not blank, the body moves, tracked body at its projected position (seed ${seed})`, async (t) => {
      const r = c.rollouts();
      const ep = r.episodes[0];
      const k = typeof c.k === 'function' ? c.k(ep) : c.k || ep.rewards.length; // 0: the last step
      assert.ok(k >= 5, `episode of ${ep.rewards.length} steps is too short to see motion`);
      const file = join(work, `${r.envId}.html`);
      writeReplayPage(file, r);
      const page: BrowserPage = await browser.open(
        `${pathToFileURL(file).href}?ui=0&hud=0&follow=0&autoplay=0&w=${W}&h=${H}${c.query ? `&${c.query}` : ''}`,
        W,
        H,
        'window.replay && window.replay.ready',
      );
      const frames: Uint8Array[] = [];
      const centres: { x: number; y: number; n: number }[] = [];
      const expected: [number, number][] = [];
      for (const step of [0, k]) {
        assert.equal(await page.evaluate<number>(`replay.seek(${step})`), step);
        const px = decodePng(await page.screenshot());
        frames.push(px);
        assert.ok(
          foregroundPixels(px) > 0.01 * W * H,
          `step ${step}: the frame is blank (${foregroundPixels(px)} foreground pixels)`,
        );
        if (r.scene.kind === 'mujoco') {
          const cam = await page.evaluate<PerspectiveCamera>('replay.camera()');
          assert.deepEqual([cam.kind, cam.width, cam.height], ['perspective', W, H]);
          const ref = silhouetteCentroid(trackedCapsules(r.scene, ep, step, cam));
          expected.push([ref.x, ref.y]);
          centres.push(colourCentroid(px, TRACK));
        } else {
          const cam = await page.evaluate<FlatCamera>('replay.camera()');
          const s = ep.states[step].qpos;
          if (r.scene.kind === 'cartpole') {
            // the cart: a box of the track colour centred on (x, 0)
            expected.push([cam.originX + cam.scale * s[0], cam.originY]);
            centres.push(colourCentroid(px, TRACK));
          } else {
            // the rod (colour #cc4c4c, 0.2 m wide) from the pivot to (-l sin θ, l cos θ), less
            // the pivot's disk (6 px) drawn over it
            const l = r.scene.length;
            const pivot: [number, number] = [cam.originX, cam.originY];
            const tip: [number, number] = [
              cam.originX - cam.scale * l * Math.sin(s[0]),
              cam.originY - cam.scale * l * Math.cos(s[0]),
            ];
            const ref = silhouetteCentroid(
              [{ a: pivot, b: tip, r: Math.max(3, cam.scale * 0.1) }],
              [{ a: pivot, b: pivot, r: 6 }],
            );
            expected.push([ref.x, ref.y]);
            centres.push(colourCentroid(px, [0xcc, 0x4c, 0x4c]));
          }
        }
      }
      assert.ok(
        changedPixels(frames[0], frames[1]) > 0.002 * W * H,
        `steps 0 and ${k} render the same frame`,
      );
      centres.forEach((got, i) => {
        const [ex, ey] = expected[i];
        assert.ok(got.n > 20, `step ${[0, k][i]}: only ${got.n} pixels of the tracked colour`);
        const err = Math.hypot(got.x - ex, got.y - ey);
        t.diagnostic(`step ${[0, k][i]}: ${err.toFixed(2)} px from the projection (${got.n} pixels)`);
        assert.ok(
          err <= c.tolerance,
          `step ${[0, k][i]}: tracked body drawn at (${got.x.toFixed(1)}, ${got.y.toFixed(1)}), projected at (${ex.toFixed(1)}, ${ey.toFixed(1)}): ${err.toFixed(2)} px > ${c.tolerance}`,
        );
      });
      // the classic tasks' motion is the pole's and the rod's swing: the changed pixels above
      if (r.scene.kind === 'mujoco') {
        const moved = Math.hypot(expected[1][0] - expected[0][0], expected[1][1] - expected[0][1]);
        assert.ok(moved > 2, `the body moved ${moved.toFixed(1)} px between steps 0 and ${k}`);
      }
    });
});

describe('MP4 of a recorded episode', { skip }, () => {
  test(`Hopper-v5: ffprobe decodes every frame at the asked size (seed ${seed})`, async () => {
    const r = recordPolicy(level('hopper-v5', medium('hopper-v5')), {
      episodes: 1,
      seed,
      stochastic: true,
      maxEpisodeSteps: 30,
    });
    const page = join(work, 'hopper-video.html');
    writeReplayPage(page, r);
    const out = join(work, 'hopper.mp4');
    const gif = join(work, 'hopper.gif');
    const v = await renderVideo(
      page,
      out,
      { width: 200, height: 120, episode: 0, every: 2, follow: true, gif, gifWidth: 100 },
      tools as BrowserTools,
    );
    const steps = r.episodes[0].rewards.length;
    assert.equal(v.frames, Math.floor(steps / 2) + 1);
    const probe = spawnSync(
      'ffprobe',
      [
        '-v',
        'error',
        '-count_frames',
        '-select_streams',
        'v:0',
        '-show_entries',
        'stream=codec_name,width,height,nb_read_frames',
        '-of',
        'json',
        out,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(probe.status, 0, probe.stderr);
    const [stream] = (JSON.parse(probe.stdout) as { streams: Record<string, string | number>[] }).streams;
    assert.deepEqual(
      {
        codec: stream.codec_name,
        width: stream.width,
        height: stream.height,
        frames: Number(stream.nb_read_frames),
      },
      { codec: 'h264', width: 200, height: 120, frames: v.frames },
    );
    assert.equal(readFileSync(gif).subarray(0, 6).toString('latin1'), 'GIF89a');
  });
});

describe('exp rollout view|video as a user calls them', { skip }, () => {
  const env = testEnv(work);
  const policy = level('hopper-v5', medium('hopper-v5'));

  test('view <policy.json>: a self-contained page, its path printed', async () => {
    const out = join(work, 'cli-view.html');
    const r = await runExp(
      ['rollout', 'view', policy, '--episodes', '2', '--max-steps', '25', '--out', out, '--no-open'],
      { cwd: work, env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`replay page: ${out}`));
    const html = readFileSync(out, 'utf8');
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, 'no network at view time');
    assert.match(html, /id="rollout-data"/);
  });

  test('video <rollouts.arrow>: an MP4 of the chosen episode', async () => {
    const arrow = join(work, 'cli.arrow');
    writeRollouts(arrow, recordRandom('Hopper-v5', 20, seed));
    const out = join(work, 'cli.mp4');
    const r = await runExp(['rollout', 'video', arrow, '--out', out, '--width', '160', '--height', '96'], {
      cwd: work,
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /video: .*cli\.mp4 \(\d+ frames, 160×96/);
    assert.ok(existsSync(out));
  });

  test('offline-rl with eval.record and eval.video logs rollouts; view and video <run> read them', async () => {
    const dataset = join(work, 'pendulum.arrow');
    const rng = new Rng(seed);
    writeEpisodes(
      dataset,
      {
        datasetId: 'test/pendulum-random-v0',
        observationSpace: boxSpace(3),
        actionSpace: boxSpace(1, 'float32', -2, 2),
        envId: 'Pendulum-v1',
      },
      Array.from({ length: 6 }, () => {
        const T = 12;
        return {
          observations: rng.normalArray((T + 1) * 3),
          actions: Float32Array.from({ length: T }, () => Math.tanh(rng.normal())),
          rewards: Float64Array.from({ length: T }, () => -rng.next()),
          terminations: Array.from({ length: T }, () => false),
          truncations: Array.from({ length: T }, (_, t) => t === T - 1),
        };
      }),
    );
    const store = join(work, 'mlruns');
    const run = await runExp(
      [
        'run',
        join(repoRoot, 'test/fixtures/offline-rl-tiny.yaml'),
        '--json',
        '--set',
        `offline-rl.dataset=${dataset}`,
        '--set',
        'offline-rl.algo=bc',
        '--set',
        'offline-rl.eval.episodes=2',
        '--set',
        'offline-rl.eval.video=true',
        // one evaluation, at the last step (6): videos take seconds each
        '--set',
        'offline-rl.train.evalEvery=0',
        '--set',
        `tracking.uri=${store}`,
      ],
      { cwd: work, env },
    );
    assert.equal(run.code, 0, run.stderr);
    const { run_id } = outcome(run);
    const listed = await runExp(['runs', 'show', run_id, '--json', '--tracking-uri', store], {
      cwd: work,
      env,
    });
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok((JSON.parse(listed.stdout) as { artifacts: string[] }).artifacts.includes('rollouts/'));
    for (const step of [6])
      for (const f of ['rollouts.arrow', 'replay.html', 'episode-0.mp4'])
        assert.ok(
          existsSync(
            join(store, outcome(run).experiment_id, run_id, 'artifacts', 'rollouts', `step-${step}`, f),
          ),
          `artifact rollouts/step-${step}/${f}`,
        );
    const out = join(work, 'run-view.html');
    const view = await runExp(
      ['rollout', 'view', run_id.slice(0, 10), '--tracking-uri', store, '--out', out, '--no-open'],
      { cwd: work, env },
    );
    assert.equal(view.code, 0, view.stderr);
    assert.match(readFileSync(out, 'utf8'), new RegExp(run_id));
    const mp4 = join(work, 'run.mp4');
    const video = await runExp(
      [
        'rollout',
        'video',
        run_id,
        '--tracking-uri',
        store,
        '--step',
        '6',
        '--out',
        mp4,
        '--width',
        '120',
        '--height',
        '90',
      ],
      {
        cwd: work,
        env,
      },
    );
    assert.equal(video.code, 0, video.stderr);
    assert.match(video.stdout, /Pendulum-v1 episode 0/);
  });

  test('ppo with evalVideo logs rollouts and an MP4 per kept episode of each evaluation', async () => {
    const store = join(work, 'ppo-mlruns');
    const run = await runExp(
      [
        'run',
        join(repoRoot, 'experiments', 'configs', 'ppo-cartpole.yaml'),
        '--json',
        ...['--set', 'ppo.totalSteps=1024', '--set', 'ppo.evalEvery=2', '--set', 'ppo.evalEpisodes=2'],
        ...['--set', 'ppo.evalVideo=true', '--set', `tracking.uri=${store}`],
      ],
      { cwd: work, env },
    );
    assert.equal(run.code, 0, run.stderr);
    const o = outcome(run);
    // 1024 steps are 2 updates of 4 × 128: one evaluation at env step 1024
    const dir = join(store, o.experiment_id, o.run_id, 'artifacts', 'rollouts', 'step-1024');
    for (const f of ['rollouts.arrow', 'replay.html', 'episode-0.mp4'])
      assert.ok(existsSync(join(dir, f)), f);
  });

  test('evalVideo where chromium cannot be had: exit 2 naming the key, before training', async () => {
    const r = await runExp(
      [
        'run',
        join(repoRoot, 'experiments', 'configs', 'ppo-cartpole.yaml'),
        ...['--set', 'ppo.evalVideo=true', '--set', `tracking.uri=${join(work, 'no-video-mlruns')}`],
      ],
      { cwd: work, env: { ...env, RING_CHROMIUM: join(work, 'no-such-chromium') } },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /ppo\.evalVideo: needs chromium and ffmpeg, which scripts\/browser-env\.sh cannot install here/,
    );
  });

  test('bad input: exit 2 naming the argument', async () => {
    const notRollouts = join(work, 'not-rollouts.arrow');
    writeFileSync(notRollouts, 'hello');
    const store = join(work, 'empty-mlruns');
    for (const [args, message] of [
      [['rollout', 'view', 'no-such-run'], /<source> 'no-such-run': no such file, and not a run id/],
      [
        ['rollout', 'view', 'abcdef12', '--tracking-uri', store],
        /<source>: no run id starts with 'abcdef12'/,
      ],
      [['rollout', 'view', notRollouts, '--no-open'], new RegExp(`${notRollouts}: .*rollout`)],
      [['rollout', 'video', policy, '--max-steps', '5', '--width', '161'], /--width must be an even integer/],
      [
        ['rollout', 'video', policy, '--max-steps', '5', '--episode', '3'],
        /--episode 3: the rollouts have 1 episodes/,
      ],
    ] as const) {
      const r = await runExp([...args], { cwd: work, env });
      assert.equal(r.code, 2, `exp ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});

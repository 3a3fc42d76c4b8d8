/**
 * Videos of recorded rollouts (issue 18): headless Chromium plays the replay page frame by frame
 * (`replay.seek(t)` then a screenshot), ffmpeg encodes the PNGs as H.264 MP4 and, when asked,
 * a small palette GIF. Chromium and ffmpeg are Debian packages that scripts/browser-env.sh installs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InputError, temporarySibling } from '../../common/index.js';
import { HeadlessChromium } from './chromium.js';

export interface BrowserTools {
  chromium: string;
  ffmpeg: string;
}

/**
 * Runs scripts/browser-env.sh (installing chromium and ffmpeg when missing) and returns their
 * paths, or `{ unavailable }` with the script's reason when they cannot be installed here.
 */
export function browserTools(): BrowserTools | { unavailable: string } {
  const script = fileURLToPath(new URL('../../../scripts/browser-env.sh', import.meta.url));
  const r = spawnSync('bash', [script], { encoding: 'utf8' });
  if (r.status === 3) return { unavailable: r.stderr.trim().replace(/^browser-env: (unavailable: )?/, '') };
  if (r.status !== 0)
    throw new Error(`scripts/browser-env.sh failed (exit ${r.status ?? r.signal}): ${r.stderr.trim()}`);
  const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(r.stdout)?.[1];
  const chromium = get('chromium');
  const ffmpeg = get('ffmpeg');
  if (!chromium || !ffmpeg) throw new Error(`scripts/browser-env.sh printed no paths: ${r.stdout}`);
  return { chromium, ffmpeg };
}

/** Like `browserTools`, but a missing tool is an error naming the script (what the CLI wants). */
export function requireBrowserTools(who: string): BrowserTools {
  const t = browserTools();
  if ('unavailable' in t)
    throw new InputError(
      `${who}: needs chromium and ffmpeg, which scripts/browser-env.sh cannot install here: ${t.unavailable}`,
    );
  return t;
}

export interface VideoOptions {
  /** Frame size in pixels; even numbers (H.264's 4:2:0 needs them). */
  width: number;
  height: number;
  /** Which recorded episode (position in the file: 0 is the first kept). */
  episode: number;
  /** Render every `every`-th state (1: all); the video plays at 1 / (dt · every) frames per second. */
  every: number;
  /** The camera follows the tracked body. */
  follow: boolean;
  /** Also write a GIF here, `gifWidth` pixels wide at `gifFps` frames per second. */
  gif?: string;
  gifWidth?: number;
  gifFps?: number;
  /** Called after each frame (progress). */
  onFrame?: (done: number, total: number) => void;
}

export interface VideoResult {
  frames: number;
  fps: number;
  width: number;
  height: number;
  steps: number;
}

function runFfmpeg(ffmpeg: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-y', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}: ${err.trim()}`)),
    );
  });
}

/** Renders episode `o.episode` of the replay page at `pagePath` to the MP4 `out` (atomically). */
export async function renderVideo(
  pagePath: string,
  out: string,
  o: VideoOptions,
  tools: BrowserTools,
): Promise<VideoResult> {
  for (const [k, v] of [
    ['width', o.width],
    ['height', o.height],
  ] as const)
    if (!Number.isInteger(v) || v < 16 || v % 2)
      throw new InputError(`renderVideo: --${k} must be an even integer ≥ 16; got ${v}`);
  if (!Number.isInteger(o.every) || o.every < 1)
    throw new InputError(`renderVideo: --every must be an integer ≥ 1; got ${o.every}`);
  const url = `${pathToFileURL(pagePath).href}?ui=0&autoplay=0&w=${o.width}&h=${o.height}&episode=${o.episode}&follow=${o.follow ? 1 : 0}`;
  const browser = HeadlessChromium.launch({ executable: tools.chromium });
  const tmp = temporarySibling(out);
  const frameDir = mkdtempSync(join(tmpdir(), 'ring-frames-'));
  try {
    const page = await browser.open(url, o.width, o.height, 'window.replay && window.replay.ready');
    const info = await page.evaluate<{ dt: number; steps: number; episodes: number }>(
      `({ dt: replay.dt, steps: replay.episodes[${o.episode}] ? replay.episodes[${o.episode}].steps : -1, episodes: replay.episodes.length })`,
    );
    if (info.steps < 0)
      throw new InputError(
        `renderVideo: --episode ${o.episode}: the rollouts have ${info.episodes} episodes (0–${info.episodes - 1})`,
      );
    const fps = 1 / (info.dt * o.every);
    const frames = Math.floor(info.steps / o.every) + 1;
    // the frames as PNG files: the MP4 and the GIF are both encoded from these lossless frames
    // (a GIF made from the H.264 file carries its compression noise and grows several-fold)
    for (let k = 0; k < frames; k++) {
      await page.evaluate(`replay.seek(${k * o.every})`);
      writeFileSync(join(frameDir, `${String(k).padStart(6, '0')}.png`), await page.screenshot());
      o.onFrame?.(k + 1, frames);
    }
    const input = ['-framerate', String(fps), '-i', join(frameDir, '%06d.png')];
    await runFfmpeg(tools.ffmpeg, [
      ...input,
      ...['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '23', '-preset', 'veryfast'],
      ...['-movflags', '+faststart', '-f', 'mp4', tmp],
    ]);
    renameSync(tmp, out);
    if (o.gif) {
      const gifTmp = temporarySibling(o.gif);
      const gw = o.gifWidth ?? 320;
      const gfps = o.gifFps ?? Math.min(15, fps);
      try {
        // one palette for the whole clip, no dithering: flat colours compress best in LZW
        const filter = `fps=${gfps},scale=${gw}:-2:flags=lanczos,split[a][b];[a]palettegen=max_colors=48[p];[b][p]paletteuse=dither=none`;
        await runFfmpeg(tools.ffmpeg, [...input, '-vf', filter, '-f', 'gif', gifTmp]);
        renameSync(gifTmp, o.gif);
      } finally {
        rmSync(gifTmp, { force: true });
      }
    }
    return { frames, fps, width: o.width, height: o.height, steps: info.steps };
  } finally {
    rmSync(tmp, { force: true });
    rmSync(frameDir, { recursive: true, force: true });
    await browser.close();
  }
}

/**
 * The replay page (issue 18): one self-contained HTML file, the recorded episodes inlined as
 * base64 typed arrays and the player (assets/player.js) inlined as a script, so it opens from
 * MLflow's artifact view or a local folder with no network.
 *
 * Query parameters (what `exp rollout video` and the tests set): `w`, `h` (canvas size),
 * `ui=0` (canvas only), `hud=0`, `episode`, `follow=0`, `speed`, `azimuth`, `elevation`,
 * `distance`, `autoplay=0`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../common/index.js';
import type { Rollouts } from '../../rl/rollout/index.js';

/** The player script, read from the source tree (dist/ has no copy of assets). */
function playerScript(): string {
  return readFileSync(
    fileURLToPath(new URL('../../../experiments/rollout/assets/player.js', import.meta.url)),
    'utf8',
  );
}

const b64 = (a: Float32Array | Float64Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

/** The page's data: per episode, rewards (T,), states (T+1, nq), and MuJoCo's body poses. */
function pageData(r: Rollouts) {
  return {
    envId: r.envId,
    dt: r.dt,
    scene: r.scene,
    source: r.source ?? {},
    episodes: r.episodes.map((e) => {
      const T = e.rewards.length;
      const nq = e.states[0].qpos.length;
      const qpos = new Float64Array((T + 1) * nq);
      e.states.forEach((s, t) => {
        qpos.set(s.qpos, t * nq);
      });
      const poses = r.scene.kind === 'mujoco' ? r.scene.nbody : 0;
      const xpos = new Float32Array((T + 1) * poses * 3);
      const xquat = new Float32Array((T + 1) * poses * 4);
      if (poses)
        e.states.forEach((s, t) => {
          if (s.xpos) xpos.set(s.xpos, t * poses * 3);
          if (s.xquat) xquat.set(s.xquat, t * poses * 4);
        });
      return {
        index: e.index,
        seed: e.seed,
        labels: e.labels,
        return: e.return,
        steps: T,
        rewards: b64(Float64Array.from(e.rewards)),
        qpos: b64(qpos),
        ...(poses ? { xpos: b64(xpos), xquat: b64(xquat) } : {}),
      };
    }),
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The HTML text of the replay page of `r`. */
export function replayPage(r: Rollouts): string {
  // NOTE: '<' escaped so that no '</script>' inside the data can end the script element
  const data = JSON.stringify(pageData(r)).replace(/</g, '\\u003c');
  const title = `${r.envId} rollouts${r.source?.run ? ` · run ${r.source.run.slice(0, 8)}` : ''}`;
  const source = Object.entries(r.source ?? {})
    .map(([k, v]) => `${escapeHtml(k)} ${escapeHtml(v)}`)
    .join(' · ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
  html, body { margin: 0; background: #fff; font: 13px sans-serif; color: #222; }
  body.embed { overflow: hidden; }
  #view, #timeline { display: block; }
  #controls { padding: 6px 8px; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
  #scrub { flex: 1; min-width: 200px; }
  #source { padding: 2px 8px 8px; color: #666; }
</style>
</head>
<body>
<canvas id="view"></canvas>
<div id="controls">
  <button id="play">play</button>
  <input id="scrub" type="range" min="0" value="0">
  <label>speed <select id="speed"><option>0.25</option><option>0.5</option><option selected>1</option><option>2</option><option>4</option></select></label>
  <label><input id="follow" type="checkbox" checked> camera follows</label>
  <select id="episode"></select>
  <span id="status"></span>
</div>
<canvas id="timeline"></canvas>
<div id="source">${escapeHtml(title)}${source ? ` · ${source}` : ''} · space: play/pause, ←/→: step</div>
<script id="rollout-data" type="application/json">${data}</script>
<script>
${playerScript()}
</script>
</body>
</html>
`;
}

/** Writes the page of `r` to `path` atomically. */
export function writeReplayPage(path: string, r: Rollouts): void {
  writeFileAtomic(path, replayPage(r));
}

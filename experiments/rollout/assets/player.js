// The replay page's player (issue 18): plain browser JavaScript, inlined into the page by
// experiments/rollout/page.ts, no network. It draws the task's MJCF geoms (or a classic task's
// shapes) on a 2D canvas through a pinhole camera, and exposes `window.replay` so headless
// Chromium (experiments/rollout/video.ts and the tests) can seek frame by frame and read the
// camera it drew with.
/* global document, window, requestAnimationFrame, performance, atob, URLSearchParams */
(() => {
  const DATA = JSON.parse(document.getElementById('rollout-data').textContent);
  const params = new URLSearchParams(window.location.search);
  const num = (k, d) => (params.has(k) ? Number(params.get(k)) : d);
  // without w/h the page fits the window it opens in (MLflow's artifact view is narrow)
  const WIDTH = num('w', Math.max(320, Math.min(960, (window.innerWidth || 800) - 16)));
  const HEIGHT = num('h', Math.round(WIDTH * 0.6));
  const UI = params.get('ui') !== '0';
  const HUD = params.get('hud') !== '0';
  // The body the camera follows is drawn in this colour, so it is found at a glance (and by the tests).
  const TRACK_COLOR = '#e8772e';
  const SKY = ['#dfe9f3', '#f7f9fb'];

  function decode(b64, Type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }
  const episodes = DATA.episodes.map((e) => ({
    ...e,
    rewards: decode(e.rewards, Float64Array),
    qpos: decode(e.qpos, Float64Array),
    xpos: e.xpos ? decode(e.xpos, Float32Array) : null,
    xquat: e.xquat ? decode(e.xquat, Float32Array) : null,
  }));
  for (const e of episodes) {
    e.returns = new Float64Array(e.steps + 1);
    for (let t = 1; t <= e.steps; t++) e.returns[t] = e.returns[t - 1] + e.rewards[t - 1];
  }
  const scene = DATA.scene;

  // ------------------------------------------------------------------ geometry helpers
  /** Rotation matrix (row-major 3×3) of a unit quaternion (w, x, y, z), as MuJoCo's mju_quat2Mat. */
  function quatMat(w, x, y, z) {
    return [
      1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
      2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
      2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ];
  }
  const mulMat = (a, b) => {
    const o = new Array(9);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) o[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
    return o;
  };
  const mulVec = (m, v) => [
    m[0] * v[0] + m[1] * v[1] + m[2] * v[2],
    m[3] * v[0] + m[4] * v[1] + m[5] * v[2],
    m[6] * v[0] + m[7] * v[1] + m[8] * v[2],
  ];
  const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const scale = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const norm = (a) => scale(a, 1 / Math.hypot(a[0], a[1], a[2]));
  const rgb = (c, k = 1) =>
    `rgb(${Math.round(255 * Math.min(1, c[0] * k))},${Math.round(255 * Math.min(1, c[1] * k))},${Math.round(255 * Math.min(1, c[2] * k))})`;

  /** Body b's position and rotation at step t of episode e. */
  function bodyPose(e, t, b) {
    const n = scene.nbody;
    const p = e.xpos.subarray((t * n + b) * 3, (t * n + b) * 3 + 3);
    const q = e.xquat.subarray((t * n + b) * 4, (t * n + b) * 4 + 4);
    return { pos: [p[0], p[1], p[2]], mat: quatMat(q[0], q[1], q[2], q[3]) };
  }

  // ------------------------------------------------------------------ camera
  const state = {
    episode: 0,
    step: 0,
    playing: false,
    speed: num('speed', 1),
    follow: params.get('follow') !== '0',
    azimuth: num('azimuth', scene.kind === 'mujoco' && scene.nq > 9 ? -60 : -90),
    elevation: num('elevation', scene.kind === 'mujoco' && scene.nq > 9 ? 25 : 8),
    distance: num('distance', 0),
  };

  /** Radius of the model around its tracked body at the reset: what the camera distance is sized by. */
  function modelRadius(e) {
    const root = bodyPose(e, 0, scene.trackBody).pos;
    let r = 0.5;
    for (const g of scene.geoms) {
      if (g.type === 'plane') continue;
      const b = bodyPose(e, 0, g.body);
      const c = add(b.pos, mulVec(b.mat, g.pos));
      r = Math.max(r, Math.hypot(...sub(c, root)) + Math.max(g.size[0], g.size[1] || 0));
    }
    return r;
  }

  /** The camera of the current frame: eye, target, up, vertical field of view, image size. */
  function camera() {
    const e = episodes[state.episode];
    if (scene.kind !== 'mujoco') return { kind: '2d', ...view2d(), width: WIDTH, height: HEIGHT };
    const start = bodyPose(e, 0, scene.trackBody).pos;
    const now = bodyPose(e, state.step, scene.trackBody).pos;
    // follow x and y only: a jumping hopper keeps a still horizon
    const target = state.follow ? [now[0], now[1], start[2]] : start;
    const fovy = scene.fovy || 45;
    const distance = state.distance || (1.35 * modelRadius(e)) / Math.tan(((fovy / 2) * Math.PI) / 180) + 0.5;
    const az = (state.azimuth * Math.PI) / 180;
    const el = (state.elevation * Math.PI) / 180;
    const eye = add(target, scale([Math.cos(el) * Math.cos(az), Math.cos(el) * Math.sin(az), Math.sin(el)], distance));
    return { kind: 'perspective', eye, target, up: [0, 0, 1], fovy, width: WIDTH, height: HEIGHT };
  }

  /** Pinhole projection: camera coordinates (right, up, forward depth), then pixels. */
  function projector(cam) {
    const fwd = norm(sub(cam.target, cam.eye));
    const right = norm(cross(fwd, cam.up));
    const up = cross(right, fwd);
    const f = cam.height / 2 / Math.tan(((cam.fovy / 2) * Math.PI) / 180);
    const toCam = (p) => {
      const d = sub(p, cam.eye);
      return [dot(d, right), dot(d, up), dot(d, fwd)];
    };
    const toPixel = (c) => [cam.width / 2 + (f * c[0]) / c[2], cam.height / 2 - (f * c[1]) / c[2]];
    return { toCam, toPixel, f, fwd };
  }

  // ------------------------------------------------------------------ drawing
  const view = document.getElementById('view');
  view.width = WIDTH;
  view.height = HEIGHT;
  const ctx = view.getContext('2d');
  const NEAR = 0.05;

  function clipNear(poly) {
    const out = [];
    for (let i = 0; i < poly.length; i++) {
      const a = poly[i];
      const b = poly[(i + 1) % poly.length];
      if (a[2] >= NEAR) out.push(a);
      if (a[2] >= NEAR !== b[2] >= NEAR) {
        const s = (NEAR - a[2]) / (b[2] - a[2]);
        out.push([a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1]), NEAR]);
      }
    }
    return out;
  }

  function drawFloor(P, cam, plane) {
    const span = 30;
    const cx = Math.round(cam.target[0]);
    const cy = Math.round(cam.target[1]);
    const quad = [
      [cx - span, cy - span, 0],
      [cx + span, cy - span, 0],
      [cx + span, cy + span, 0],
      [cx - span, cy + span, 0],
    ].map(P.toCam);
    const poly = clipNear(quad).map(P.toPixel);
    const color = plane ? plane.rgba : [0.8, 0.85, 0.8];
    ctx.fillStyle = rgb(color, 1.05);
    ctx.beginPath();
    poly.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
    ctx.fill();
    ctx.strokeStyle = rgb(color, 0.8);
    ctx.lineWidth = 1;
    for (let k = -span; k <= span; k++) {
      for (const [a, b] of [
        [
          [cx + k, cy - span, 0],
          [cx + k, cy + span, 0],
        ],
        [
          [cx - span, cy + k, 0],
          [cx + span, cy + k, 0],
        ],
      ]) {
        let ca = P.toCam(a);
        let cb = P.toCam(b);
        if (ca[2] < NEAR && cb[2] < NEAR) continue;
        if (ca[2] < NEAR || cb[2] < NEAR) {
          const s = (NEAR - ca[2]) / (cb[2] - ca[2]);
          const m = [ca[0] + s * (cb[0] - ca[0]), ca[1] + s * (cb[1] - ca[1]), NEAR];
          if (ca[2] < NEAR) ca = m;
          else cb = m;
        }
        const pa = P.toPixel(ca);
        const pb = P.toPixel(cb);
        ctx.beginPath();
        ctx.moveTo(pa[0], pa[1]);
        ctx.lineTo(pb[0], pb[1]);
        ctx.stroke();
      }
    }
  }

  const BOX_FACES = [
    [0, 1, 3, 2],
    [4, 6, 7, 5],
    [0, 4, 5, 1],
    [2, 3, 7, 6],
    [0, 2, 6, 4],
    [1, 5, 7, 3],
  ];

  function drawMujoco() {
    const e = episodes[state.episode];
    const cam = camera();
    const P = projector(cam);
    const sky = ctx.createLinearGradient(0, 0, 0, HEIGHT);
    sky.addColorStop(0, SKY[0]);
    sky.addColorStop(1, SKY[1]);
    ctx.fillStyle = sky;
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    drawFloor(
      P,
      cam,
      scene.geoms.find((g) => g.type === 'plane'),
    );
    const items = [];
    for (const g of scene.geoms) {
      if (g.type === 'plane' || g.rgba[3] === 0) continue;
      const b = bodyPose(e, state.step, g.body);
      const center = add(b.pos, mulVec(b.mat, g.pos));
      const mat = mulMat(b.mat, quatMat(g.quat[0], g.quat[1], g.quat[2], g.quat[3]));
      const c = P.toCam(center);
      if (c[2] < NEAR) continue;
      items.push({ g, center, mat, depth: c[2] });
    }
    // far to near (a painter's algorithm), the followed body last: children are attached at
    // joints inside its geoms (Ant's hips start at the torso's centre), so drawing it over them
    // is closer to the truth than depth order by geom centres, and it stays in view
    const tracked = (it) => (it.g.body === scene.trackBody ? 1 : 0);
    items.sort((a, b) => tracked(a) - tracked(b) || b.depth - a.depth);
    for (const { g, center, mat, depth } of items) {
      const tracked = g.body === scene.trackBody;
      const fill = tracked ? TRACK_COLOR : rgb(g.rgba);
      const edge = tracked ? '#8a3f0c' : rgb(g.rgba, 0.55);
      if (g.type === 'sphere' || g.type === 'ellipsoid') {
        const p = P.toPixel(P.toCam(center));
        const r = (P.f * Math.max(...g.size)) / depth;
        ctx.beginPath();
        ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
        ctx.fillStyle = fill;
        ctx.fill();
        ctx.lineWidth = 1.5;
        ctx.strokeStyle = edge;
        ctx.stroke();
      } else if (g.type === 'capsule' || g.type === 'cylinder') {
        const axis = [mat[2], mat[5], mat[8]];
        const ca = P.toCam(add(center, scale(axis, g.size[1])));
        const cb = P.toCam(add(center, scale(axis, -g.size[1])));
        if (ca[2] < NEAR || cb[2] < NEAR) continue;
        const pa = P.toPixel(ca);
        const pb = P.toPixel(cb);
        const w = (2 * P.f * g.size[0]) / depth;
        ctx.lineCap = g.type === 'capsule' ? 'round' : 'butt';
        ctx.beginPath();
        ctx.moveTo(pa[0], pa[1]);
        ctx.lineTo(pb[0], pb[1]);
        ctx.strokeStyle = edge;
        ctx.lineWidth = w + 3;
        ctx.stroke();
        ctx.strokeStyle = fill;
        ctx.lineWidth = w;
        ctx.stroke();
      } else if (g.type === 'box') {
        const corners = [];
        for (let i = 0; i < 8; i++) {
          const local = [i & 1 ? g.size[0] : -g.size[0], i & 2 ? g.size[1] : -g.size[1], i & 4 ? g.size[2] : -g.size[2]];
          corners.push(add(center, mulVec(mat, local)));
        }
        const faces = BOX_FACES.map((f) => {
          const pts = f.map((i) => corners[i]);
          const n = cross(sub(pts[1], pts[0]), sub(pts[3], pts[0]));
          const mid = scale(add(add(pts[0], pts[1]), add(pts[2], pts[3])), 0.25);
          return { pts, facing: dot(n, sub(cam.eye, mid)), depth: P.toCam(mid)[2] };
        })
          .filter((f) => f.facing > 0)
          .sort((a, b) => b.depth - a.depth);
        for (const f of faces) {
          const px = f.pts.map((p) => P.toPixel(P.toCam(p)));
          ctx.beginPath();
          px.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
          ctx.closePath();
          ctx.fillStyle = fill;
          ctx.fill();
          ctx.lineWidth = 1;
          ctx.strokeStyle = edge;
          ctx.stroke();
        }
      }
    }
  }

  /** The 2D view of the classic tasks: world metres to pixels, y up. */
  function view2d() {
    if (scene.kind === 'cartpole') {
      const scaleX = WIDTH / (2 * scene.xThreshold * 1.25);
      return { scale: scaleX, originX: WIDTH / 2, originY: HEIGHT * 0.65 };
    }
    return { scale: (HEIGHT * 0.38) / scene.length, originX: WIDTH / 2, originY: HEIGHT / 2 };
  }

  function drawClassic() {
    const e = episodes[state.episode];
    const n = scene.kind === 'cartpole' ? 4 : 2;
    const s = e.qpos.subarray(state.step * n, state.step * n + n);
    const v = view2d();
    ctx.fillStyle = SKY[1];
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    const X = (x) => v.originX + v.scale * x;
    const Y = (y) => v.originY - v.scale * y;
    if (scene.kind === 'cartpole') {
      ctx.strokeStyle = '#555';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(X(-scene.xThreshold), Y(0));
      ctx.lineTo(X(scene.xThreshold), Y(0));
      ctx.stroke();
      const cartW = 0.5;
      const cartH = 0.3;
      const theta = s[2];
      const pole = 2 * scene.poleHalfLength;
      ctx.strokeStyle = '#c9a36b';
      ctx.lineWidth = Math.max(4, v.scale * 0.1);
      ctx.lineCap = 'butt';
      ctx.beginPath();
      ctx.moveTo(X(s[0]), Y(cartH / 4));
      ctx.lineTo(X(s[0] + pole * Math.sin(theta)), Y(cartH / 4 + pole * Math.cos(theta)));
      ctx.stroke();
      ctx.fillStyle = TRACK_COLOR;
      ctx.fillRect(X(s[0] - cartW / 2), Y(cartH / 2), v.scale * cartW, v.scale * cartH);
    } else {
      const theta = s[0];
      ctx.strokeStyle = '#cc4c4c';
      ctx.lineWidth = Math.max(6, v.scale * 0.2);
      ctx.lineCap = 'round';
      ctx.beginPath();
      ctx.moveTo(X(0), Y(0));
      // θ = 0 is upright; positive θ turns counter-clockwise (Gymnasium's pendulum)
      ctx.lineTo(X(-scene.length * Math.sin(theta)), Y(scene.length * Math.cos(theta)));
      ctx.stroke();
      ctx.fillStyle = TRACK_COLOR;
      ctx.beginPath();
      ctx.arc(X(0), Y(0), 6, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  function labelOf(e) {
    return `episode ${e.index}${e.labels.length ? ` (${e.labels.join(', ')})` : ''}`;
  }

  function drawHud() {
    const e = episodes[state.episode];
    const text = `${DATA.envId} · ${labelOf(e)} · step ${state.step}/${e.steps} · return ${e.returns[state.step].toFixed(1)}`;
    ctx.font = '13px sans-serif';
    ctx.fillStyle = 'rgba(20,20,30,0.72)';
    ctx.fillRect(6, 6, ctx.measureText(text).width + 14, 22);
    ctx.fillStyle = '#ffffff';
    ctx.fillText(text, 13, 22);
    // the return so far, along the episode, in a strip at the bottom
    const h = 34;
    const y0 = HEIGHT - h - 6;
    const lo = Math.min(0, ...e.returns);
    const hi = Math.max(1e-9, ...e.returns);
    ctx.fillStyle = 'rgba(20,20,30,0.45)';
    ctx.fillRect(6, y0, WIDTH - 12, h);
    ctx.strokeStyle = '#9fd3ff';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let t = 0; t <= state.step; t++) {
      const x = 8 + ((WIDTH - 16) * t) / Math.max(1, e.steps);
      const y = y0 + h - 2 - ((h - 4) * (e.returns[t] - lo)) / (hi - lo);
      if (t) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
    }
    ctx.stroke();
  }

  function draw() {
    if (scene.kind === 'mujoco') drawMujoco();
    else drawClassic();
    if (HUD) drawHud();
    if (UI) drawTimeline();
  }

  // ------------------------------------------------------------------ controls (page mode)
  const timeline = document.getElementById('timeline');
  const tctx = timeline.getContext('2d');
  timeline.width = WIDTH;
  timeline.height = 90;
  const $ = (id) => document.getElementById(id);

  function drawTimeline() {
    const e = episodes[state.episode];
    const W = timeline.width;
    const H = timeline.height;
    tctx.fillStyle = '#fff';
    tctx.fillRect(0, 0, W, H);
    const x = (t) => (W * t) / Math.max(1, e.steps);
    let rlo = 0;
    let rhi = 1e-9;
    for (const r of e.rewards) {
      rlo = Math.min(rlo, r);
      rhi = Math.max(rhi, r);
    }
    const zero = H / 2 - 2;
    tctx.fillStyle = '#b7c9e2';
    for (let t = 0; t < e.steps; t++) {
      const r = e.rewards[t];
      const hgt = ((r >= 0 ? r / rhi : r / -rlo || 0) * (H / 2 - 6)) | 0;
      tctx.fillRect(x(t), r >= 0 ? zero - hgt : zero, Math.max(1, x(1)), Math.abs(hgt));
    }
    const lo = Math.min(0, ...e.returns);
    const hi = Math.max(1e-9, ...e.returns);
    tctx.strokeStyle = '#1f5fa8';
    tctx.lineWidth = 2;
    tctx.beginPath();
    for (let t = 0; t <= e.steps; t++) {
      const y = H - 4 - ((H - 8) * (e.returns[t] - lo)) / (hi - lo);
      if (t) tctx.lineTo(x(t), y);
      else tctx.moveTo(x(t), y);
    }
    tctx.stroke();
    tctx.strokeStyle = '#d33';
    tctx.beginPath();
    tctx.moveTo(x(state.step), 0);
    tctx.lineTo(x(state.step), H);
    tctx.stroke();
    tctx.fillStyle = '#333';
    tctx.font = '11px sans-serif';
    tctx.fillText(`reward (bars) · return (line) ${e.returns[state.step].toFixed(1)} of ${e.return.toFixed(1)}`, 6, 12);
    $('scrub').max = String(e.steps);
    $('scrub').value = String(state.step);
    $('status').textContent = `step ${state.step}/${e.steps} · reward ${state.step ? e.rewards[state.step - 1].toFixed(3) : '—'} · return ${e.returns[state.step].toFixed(1)}`;
  }

  function seek(step) {
    const e = episodes[state.episode];
    state.step = Math.max(0, Math.min(e.steps, Math.round(step)));
    draw();
    return state.step;
  }

  let clock = 0;
  let last = 0;
  function tick(now) {
    if (!state.playing) return;
    clock += ((now - last) / 1000) * state.speed;
    last = now;
    const e = episodes[state.episode];
    const t = Math.floor(clock / DATA.dt);
    if (t >= e.steps) {
      seek(e.steps);
      setPlaying(false);
      return;
    }
    if (t !== state.step) seek(t);
    requestAnimationFrame(tick);
  }
  function setPlaying(on) {
    state.playing = on;
    if (UI) $('play').textContent = on ? 'pause' : 'play';
    if (on) {
      const e = episodes[state.episode];
      if (state.step >= e.steps) state.step = 0;
      clock = state.step * DATA.dt;
      last = performance.now();
      requestAnimationFrame(tick);
    }
  }
  function selectEpisode(i) {
    state.episode = Math.max(0, Math.min(episodes.length - 1, i));
    if (UI) $('episode').value = String(state.episode);
    return seek(0);
  }

  if (UI) {
    $('episode').innerHTML = episodes.map((e, i) => `<option value="${i}">${labelOf(e)}: return ${e.return.toFixed(1)}, ${e.steps} steps</option>`).join('');
    $('episode').onchange = (ev) => selectEpisode(Number(ev.target.value));
    $('play').onclick = () => setPlaying(!state.playing);
    $('scrub').oninput = (ev) => {
      setPlaying(false);
      seek(Number(ev.target.value));
    };
    $('speed').value = String(state.speed);
    $('speed').onchange = (ev) => {
      state.speed = Number(ev.target.value);
      clock = state.step * DATA.dt;
    };
    $('follow').checked = state.follow;
    $('follow').onchange = (ev) => {
      state.follow = ev.target.checked;
      draw();
    };
    const scrubTimeline = (ev) => {
      const e = episodes[state.episode];
      const r = timeline.getBoundingClientRect();
      setPlaying(false);
      seek(((ev.clientX - r.left) / r.width) * e.steps);
    };
    timeline.onmousedown = (ev) => {
      scrubTimeline(ev);
      timeline.onmousemove = scrubTimeline;
    };
    window.onmouseup = () => {
      timeline.onmousemove = null;
    };
    document.onkeydown = (ev) => {
      if (ev.key === ' ') setPlaying(!state.playing);
      else if (ev.key === 'ArrowRight') seek(state.step + 1);
      else if (ev.key === 'ArrowLeft') seek(state.step - 1);
      else return;
      ev.preventDefault();
    };
  } else {
    $('controls').style.display = 'none';
    timeline.style.display = 'none';
  }

  selectEpisode(num('episode', 0));
  window.replay = {
    ready: true,
    envId: DATA.envId,
    dt: DATA.dt,
    episodes: episodes.map((e) => ({ index: e.index, labels: e.labels, return: e.return, steps: e.steps })),
    selectEpisode,
    seek,
    camera,
    play: () => setPlaying(true),
    pause: () => setPlaying(false),
    get step() {
      return state.step;
    },
    trackColor: TRACK_COLOR,
  };
  if (params.get('autoplay') !== '0' && UI) setPlaying(true);
})();

/**
 * A dependency-free SVG line plot: learning curves, max context vs devices. Linear or log2/log10
 * axes, one polyline (with point markers) per series, a legend, ticks at round numbers.
 */

export interface Series {
  name: string;
  x: number[];
  y: number[];
  /** A reference line (e.g. N × BPT): dashed, thinner, no markers, so a series on it stays visible. */
  dashed?: boolean;
}

export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Logarithmic axes (base 2 suits device counts and context lengths). */
  logX?: 2 | 10;
  logY?: 2 | 10;
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

function escapeXml(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!,
  );
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  if (a >= 1024 && Number.isInteger(v / 1024) && Math.log2(v) % 1 === 0) return `${v / 1024}K`;
  return Number(v.toPrecision(3)).toString();
}

/** Round ticks across [lo, hi] on a linear axis. */
function linearTicks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push(Number(t.toPrecision(12)));
  return out;
}

interface Axis {
  map: (v: number) => number;
  ticks: number[];
}

function makeAxis(values: number[], log: 2 | 10 | undefined, from: number, to: number): Axis {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  // reduce, not Math.min(...): long curves would overflow the argument list
  let lo = finite.length ? finite.reduce((a, b) => Math.min(a, b)) : 0;
  let hi = finite.length ? finite.reduce((a, b) => Math.max(a, b)) : 1;
  if (log) {
    const f = (v: number) => Math.log(v) / Math.log(log);
    const a = Math.floor(f(lo));
    let b = Math.ceil(f(hi));
    if (a === b) b = a + 1;
    const ticks: number[] = [];
    const stride = Math.max(1, Math.ceil((b - a) / 8));
    for (let e = a; e <= b; e += stride) ticks.push(log ** e);
    return { map: (v) => from + ((f(v) - a) / (b - a)) * (to - from), ticks };
  }
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const ticks = linearTicks(lo, hi);
  lo = Math.min(lo, ticks[0]);
  hi = Math.max(hi, ticks[ticks.length - 1]);
  return { map: (v) => from + ((v - lo) / (hi - lo)) * (to - from), ticks };
}

/** The plot as a standalone SVG document. */
export function linePlotSvg(o: LinePlotOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 400;
  const m = { left: 70, right: 160, top: 40, bottom: 50 };
  const x = makeAxis(
    o.series.flatMap((s) => s.x),
    o.logX,
    m.left,
    width - m.right,
  );
  const y = makeAxis(
    o.series.flatMap((s) => s.y),
    o.logY,
    height - m.bottom,
    m.top,
  );
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(o.title)}</text>`,
  ];
  for (const t of x.ticks) {
    const px = x.map(t).toFixed(1);
    parts.push(
      `<line x1="${px}" y1="${m.top}" x2="${px}" y2="${height - m.bottom}" stroke="#eee"/>`,
      `<text x="${px}" y="${height - m.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  for (const t of y.ticks) {
    const py = y.map(t).toFixed(1);
    parts.push(
      `<line x1="${m.left}" y1="${py}" x2="${width - m.right}" y2="${py}" stroke="#eee"/>`,
      `<text x="${m.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
    );
  }
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="#333"/>`,
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  o.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts: string[] = [];
    for (let k = 0; k < Math.min(s.x.length, s.y.length); k++) {
      const okX = Number.isFinite(s.x[k]) && (!o.logX || s.x[k] > 0);
      const okY = Number.isFinite(s.y[k]) && (!o.logY || s.y[k] > 0);
      if (okX && okY) pts.push(`${x.map(s.x[k]).toFixed(1)},${y.map(s.y[k]).toFixed(1)}`);
    }
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (pts.length > 1)
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="${s.dashed ? 1.5 : 2}"${dash} points="${pts.join(' ')}"/>`,
      );
    if (pts.length <= 50 && !s.dashed)
      for (const p of pts) {
        const [cx, cy] = p.split(',');
        parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${color}"/>`);
      }
    const ly = m.top + 10 + i * 18;
    parts.push(
      `<line x1="${width - m.right + 12}" y1="${ly}" x2="${width - m.right + 32}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<text x="${width - m.right + 38}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

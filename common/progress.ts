/**
 * Progress of long work: a redrawn bar on a terminal (steps, rate, ETA, latest metrics), plain
 * periodic lines when stderr is not a TTY (CI logs). Writes to stderr so stdout stays clean for
 * `--json` output.
 */
export interface ProgressOptions {
  /** What is being done, shown before the bar. */
  label: string;
  /** Total number of steps, if known. */
  total?: number;
  /** Minimum seconds between plain lines when not on a TTY. */
  plainEverySec?: number;
  /** Stream to draw on; stderr by default. */
  stream?: NodeJS.WriteStream;
  /** Draw nothing (tests, nested progress). */
  silent?: boolean;
}

/** The bar being drawn on a terminal, if any: a log line is printed above it, not glued to it. */
let activeBar: Progress | undefined;

/**
 * Prints a line on stderr; while a bar is drawn on the terminal, the line goes above the bar and
 * the bar is redrawn below it (issue 15: a result line was glued to the end of the bar).
 */
export function printLine(line: string): void {
  const bar = activeBar;
  if (bar) bar.printAbove(line);
  else process.stderr.write(`${line}\n`);
}

export class Progress {
  private readonly start = performance.now();
  private lastDraw = 0;
  private done = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private extras = '';

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY) && !process.env.CI;
  }

  /** Advances to `done` steps; `metrics` are shown beside the bar (e.g. the latest loss). */
  update(done: number, metrics: Record<string, number> = {}): void {
    this.done = done;
    this.extras = Object.entries(metrics)
      .map(([k, v]) => `${k}=${formatNumber(v)}`)
      .join(' ');
    const now = performance.now();
    const every = this.tty ? 100 : (this.options.plainEverySec ?? 10) * 1000;
    if (now - this.lastDraw >= every || done === this.options.total) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  /** Final line. */
  finish(): void {
    this.draw(true);
  }

  /** Clears the bar's line, prints `line` and redraws the bar under it. */
  printAbove(line: string): void {
    if (!this.tty || this.options.silent) {
      process.stderr.write(`${line}\n`);
      return;
    }
    this.stream.write(`\r\x1b[K${line}\n`);
    this.draw(false);
  }

  private draw(final: boolean): void {
    if (this.options.silent) return;
    const elapsed = (performance.now() - this.start) / 1000;
    const rate = this.done / Math.max(elapsed, 1e-9);
    const total = this.options.total;
    const eta = total !== undefined && rate > 0 ? (total - this.done) / rate : undefined;
    const counts = total !== undefined ? `${this.done}/${total}` : `${this.done}`;
    const timing = `${formatNumber(rate)}/s ${formatDuration(elapsed)}${eta !== undefined && !final ? ` eta ${formatDuration(eta)}` : ''}`;
    if (this.tty) {
      const width = 24;
      const filled = total ? Math.round((width * this.done) / total) : 0;
      const bar = total ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
      this.stream.write(
        `\r\x1b[K${this.options.label} ${bar}${counts} ${timing} ${this.extras}${final ? '\n' : ''}`,
      );
      if (final) {
        if (activeBar === this) activeBar = undefined;
      } else activeBar = this;
    } else {
      this.stream.write(`${this.options.label}: ${counts} ${timing} ${this.extras}\n`);
    }
  }
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

function formatDuration(sec: number): string {
  if (sec < 60) return `${sec.toFixed(1)}s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m${Math.floor(sec % 60)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

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
  /** The clock, ms (default performance.now); tests give a fake one. */
  now?: () => number;
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
  private readonly now: () => number;
  private readonly start: number;
  private lastDraw = 0;
  private done = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private extras = '';
  /** Work between steps (evaluations): its name and detail while it runs, its durations, how many are left. */
  private phase: { name: string; detail: string; start: number } | undefined;
  private phaseMs = 0;
  private readonly phaseDurations = new Map<string, number[]>();
  private readonly phasesLeft = new Map<string, number>();

  constructor(private readonly options: ProgressOptions) {
    this.now = options.now ?? (() => performance.now());
    this.start = this.now();
    this.stream = options.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY) && !process.env.CI;
  }

  /** Advances to `done` steps; `metrics` are shown beside the bar (e.g. the latest loss). */
  update(done: number, metrics: Record<string, number> = {}): void {
    this.done = done;
    this.extras = Object.entries(metrics)
      .map(([k, v]) => `${k}=${formatNumber(v)}`)
      .join(' ');
    const now = this.now();
    const every = this.tty ? 100 : (this.options.plainEverySec ?? 10) * 1000;
    if (now - this.lastDraw >= every || done === this.options.total) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  /**
   * Starts work that is not a step (an evaluation, 40–70 s in offline RL): the bar shows it, its
   * time is kept out of the step rate, and its measured duration times the phases still expected
   * (`expectPhases`) is added to the ETA (issue 15: evaluations showed nothing and the ETA left
   * them out).
   */
  beginPhase(name: string, detail = ''): void {
    this.phase = { name, detail, start: this.now() };
    this.draw(false);
  }

  /** Updates the running phase's detail (`episode 2/3`) and redraws. */
  phaseDetail(detail: string): void {
    if (!this.phase) return;
    this.phase.detail = detail;
    if (this.tty) this.draw(false);
  }

  endPhase(): void {
    const p = this.phase;
    if (!p) return;
    const ms = this.now() - p.start;
    this.phaseMs += ms;
    this.phaseDurations.set(p.name, [...(this.phaseDurations.get(p.name) ?? []), ms]);
    const left = this.phasesLeft.get(p.name);
    if (left !== undefined) this.phasesLeft.set(p.name, Math.max(0, left - 1));
    this.phase = undefined;
    if (this.tty) this.draw(false);
  }

  /** How many phases called `name` are still to come (including one about to begin). */
  expectPhases(name: string, count: number): void {
    this.phasesLeft.set(name, count);
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
    const now = this.now();
    const elapsed = (now - this.start) / 1000;
    // steps per second of step time: phases (evaluations) are not steps
    const inPhase = this.phase ? now - this.phase.start : 0;
    const stepSec = Math.max((now - this.start - this.phaseMs - inPhase) / 1000, 1e-9);
    const rate = this.done / stepSec;
    const total = this.options.total;
    let eta = total !== undefined && rate > 0 ? (total - this.done) / rate : undefined;
    const unknown: string[] = [];
    for (const [name, left] of this.phasesLeft) {
      const ds = this.phaseDurations.get(name);
      // the running phase counts for what is left of it
      const running = this.phase?.name === name ? 1 : 0;
      if (!left) continue;
      if (!ds?.length) {
        unknown.push(`${left} ${name}`);
        continue;
      }
      const mean = ds.reduce((a, b) => a + b, 0) / ds.length / 1000;
      if (eta !== undefined) eta += left * mean - running * Math.min(mean, inPhase / 1000);
    }
    const counts = total !== undefined ? `${this.done}/${total}` : `${this.done}`;
    const etaText =
      eta !== undefined && !final
        ? ` eta ${formatDuration(Math.max(0, eta))}${unknown.length ? ` + ${unknown.join(', ')}` : ''}`
        : '';
    const timing = `${formatNumber(rate)}/s ${formatDuration(elapsed)}${etaText}`;
    const extras = this.phase
      ? `${this.phase.name}${this.phase.detail ? ` ${this.phase.detail}` : ''}… ${this.extras}`
      : this.extras;
    if (this.tty) {
      const width = 24;
      const filled = total ? Math.round((width * this.done) / total) : 0;
      const bar = total ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
      this.stream.write(
        `\r\x1b[K${this.options.label} ${bar}${counts} ${timing} ${extras}${final ? '\n' : ''}`,
      );
      if (final) {
        if (activeBar === this) activeBar = undefined;
      } else activeBar = this;
    } else {
      this.stream.write(`${this.options.label}: ${counts} ${timing} ${extras}\n`);
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

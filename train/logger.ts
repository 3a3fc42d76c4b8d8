/**
 * How a trainer in rl/ or lm/ reports without knowing about MLflow: experiments/ passes its
 * RunTracker (which has this method); a script or a test passes anything that collects values.
 */
export interface TrainLogger {
  /** One point per key at `step` (a training step, an env step or a device count: see METRICS). */
  metrics(values: Record<string, number>, step: number): void;
}

/** A logger that keeps every point in memory, for scripts and tests: `points[key]` = [step, value][]. */
export class MemoryLogger implements TrainLogger {
  readonly points: Record<string, [number, number][]> = {};

  metrics(values: Record<string, number>, step: number): void {
    for (const [key, value] of Object.entries(values)) {
      const list = this.points[key] ?? [];
      list.push([step, value]);
      this.points[key] = list;
    }
  }
}

/**
 * System metrics, sampled periodically while a run trains (MLflow's `system/` prefix):
 *
 * - `system/cpu_percent`: the machine's CPU utilisation over the last interval, 0–100 (all cores).
 * - `system/process_cpu_percent`: this process's CPU time over the interval, as a share of the
 *   machine's cores, 0–100.
 * - `system/memory_percent`: the machine's used memory, 0–100.
 * - `system/process_rss_mb`: this process's resident set size, MiB.
 */
import { cpus, freemem, totalmem } from 'node:os';

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total };
}

export class SystemSampler {
  private lastCpu = cpuTimes();
  private lastProcess = process.cpuUsage();
  private lastWall = performance.now();

  /** Metrics since the previous call (or construction). */
  sample(): Record<string, number> {
    const cpu = cpuTimes();
    const proc = process.cpuUsage();
    const wall = performance.now();
    const dTotal = cpu.total - this.lastCpu.total;
    const dIdle = cpu.idle - this.lastCpu.idle;
    const dProcMs = (proc.user - this.lastProcess.user + proc.system - this.lastProcess.system) / 1000;
    const dWall = wall - this.lastWall;
    this.lastCpu = cpu;
    this.lastProcess = proc;
    this.lastWall = wall;
    const cores = Math.max(1, cpus().length);
    const round = (v: number) => Math.round(v * 100) / 100;
    return {
      'system/cpu_percent': round(dTotal > 0 ? (100 * (dTotal - dIdle)) / dTotal : 0),
      'system/process_cpu_percent': round(dWall > 0 ? (100 * dProcMs) / (dWall * cores) : 0),
      'system/memory_percent': round((100 * (totalmem() - freemem())) / totalmem()),
      'system/process_rss_mb': round(process.memoryUsage.rss() / 2 ** 20),
    };
  }
}

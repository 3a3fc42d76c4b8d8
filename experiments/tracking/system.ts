/**
 * System metrics, sampled periodically while a run trains, under the names MLflow's own system
 * metrics monitor logs (mlflow/system_metrics: cpu_monitor.py, disk_monitor.py), so the MLflow
 * UI's "System metrics" tab and any query written for MLflow runs find them (issue 15):
 *
 * - `system/cpu_utilization_percentage`: the machine's CPU utilisation over the last interval,
 *   0–100 (all cores).
 * - `system/system_memory_usage_megabytes`: the machine's used memory, MB (10⁶ bytes, as MLflow).
 * - `system/system_memory_usage_percentage`: the same, 0–100.
 * - `system/disk_usage_megabytes`, `system/disk_available_megabytes`,
 *   `system/disk_usage_percentage`: the file system of the working folder.
 *
 * and two of ours, for this process (MLflow has none):
 * - `system/process_cpu_utilization_percentage`: this process's CPU time over the interval, as a
 *   share of the machine's cores, 0–100.
 * - `system/process_memory_rss_megabytes`: this process's resident set size, MB.
 */
import { statfsSync } from 'node:fs';
import { cpus, freemem, totalmem } from 'node:os';

/** The metric whose last step a resumed run continues the system-metrics steps from. */
export const SYSTEM_STEP_METRIC = 'system/cpu_utilization_percentage';

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

  constructor(private readonly diskPath = process.cwd()) {}

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
    const used = totalmem() - freemem();
    const out: Record<string, number> = {
      'system/cpu_utilization_percentage': round(dTotal > 0 ? (100 * (dTotal - dIdle)) / dTotal : 0),
      'system/system_memory_usage_megabytes': round(used / 1e6),
      'system/system_memory_usage_percentage': round((100 * used) / totalmem()),
      'system/process_cpu_utilization_percentage': round(dWall > 0 ? (100 * dProcMs) / (dWall * cores) : 0),
      'system/process_memory_rss_megabytes': round(process.memoryUsage.rss() / 1e6),
    };
    try {
      const fs = statfsSync(this.diskPath);
      const total = fs.blocks * fs.bsize;
      const free = fs.bavail * fs.bsize;
      // NOTE: psutil's percent is used / (used + available to unprivileged users), as here
      const usedDisk = (fs.blocks - fs.bfree) * fs.bsize;
      out['system/disk_usage_megabytes'] = round(usedDisk / 1e6);
      out['system/disk_available_megabytes'] = round(free / 1e6);
      out['system/disk_usage_percentage'] = round(total > 0 ? (100 * usedDisk) / (usedDisk + free) : 0);
    } catch {
      // a folder removed under the run: the disk metrics are left out of this sample
    }
    return out;
  }
}

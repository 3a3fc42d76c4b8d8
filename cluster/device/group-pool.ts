import type { BackendChoice } from '../../native/index.js';
import { RingGroup } from './group.js';

/**
 * Ring groups by device count, started on first use and kept between calls (a sweep over
 * lengths and N reuses its workers). `fresh(n)` disposes the n-device group, so the next `get`
 * starts new workers: a wasm heap never shrinks, so a memory measurement after a large one needs
 * them (issue 20).
 */
export class RingGroupPool {
  private readonly groups = new Map<number, RingGroup>();
  constructor(private readonly backend?: BackendChoice) {}

  async get(n: number): Promise<RingGroup> {
    const g = this.groups.get(n) ?? (await RingGroup.create({ devices: n, backend: this.backend }));
    this.groups.set(n, g);
    return g;
  }

  async fresh(n: number): Promise<void> {
    await this.groups.get(n)?.dispose();
    this.groups.delete(n);
  }

  // NOTE: live device workers keep the process alive: a run that failed would hang instead of exiting
  async dispose(): Promise<void> {
    for (const n of [...this.groups.keys()]) await this.fresh(n);
  }
}

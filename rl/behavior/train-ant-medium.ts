/**
 * Regenerates rl/behavior/ant-medium.json (issue 6): trains PPO on Ant-v5 (defaults: 105-d
 * observations with contact forces, as Minari's mujoco/ant datasets) and stops when a stochastic
 * evaluation over 10 episodes lands in the "medium" band: about 1/3 of D4RL's ant expert
 * reference 3879.7 (≈1293), accepted within [BAND_LO, BAND_HI].
 *
 *   node dist/rl/behavior/train-ant-medium.js [outDir] [seed]
 *
 * Writes <outDir>/log.jsonl (one line per update), <outDir>/snap-<update>.json every 10 updates
 * (actor + critic, to pick another level later) and <outDir>/ant-medium.json when the band is hit.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/index.js';
import { evaluatePolicy, type PolicyJSON, PpoPolicy, trainPpo } from '../ppo.js';

export const BAND_LO = 1100;
export const BAND_HI = 1500;
/** Where training-episode returns must be before a (slower) evaluation is tried. */
const TRY_AT = 1050;

async function main(): Promise<void> {
  const outDir = process.argv[2] ?? '.cache/ppo-ant';
  const seed = Number(process.argv[3] ?? 1);
  mkdirSync(outDir, { recursive: true });
  const log = join(outDir, 'log.jsonl');
  const recent: number[] = [];
  let lastTry = -100;
  await trainPpo({
    envId: 'Ant-v5',
    seed,
    totalSteps: 5_000_000,
    numEnvs: 4,
    numSteps: 512,
    vectorization: 'async',
    onEpisode: (ret) => {
      recent.push(ret);
      if (recent.length > 20) recent.shift();
    },
    onUpdate: (u, tr) => {
      const rolling = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : Number.NaN;
      appendFileSync(
        log,
        `${JSON.stringify({ ...u, rolling, logStd: Array.from(tr.actor.extra), t: tr.wallSec })}\n`,
      );
      if (u.update % 10 === 0)
        writeFileAtomic(join(outDir, `snap-${u.update}.json`), JSON.stringify(tr.policyJSON(true)));
      if (recent.length >= 10 && rolling >= TRY_AT && u.update - lastTry >= 5) {
        lastTry = u.update;
        // Measure the saved (float32) weights, as a user loading the file would.
        const json = JSON.parse(JSON.stringify(tr.policyJSON())) as PolicyJSON;
        const ev = evaluatePolicy(new PpoPolicy(json), { episodes: 10, seed: 10_000, stochastic: true });
        appendFileSync(
          log,
          `${JSON.stringify({ eval: u.update, envStep: u.envStep, mean: ev.mean, std: ev.std })}\n`,
        );
        writeFileAtomic(
          join(outDir, `cand-${u.update}.json`),
          JSON.stringify({ ...json, evaluation: { seed: 10_000, stochastic: ev } }),
        );
        if (ev.mean >= BAND_LO && ev.mean <= BAND_HI) {
          writeFileAtomic(
            join(outDir, 'ant-medium.json'),
            JSON.stringify({ ...json, evaluation: { seed: 10_000, stochastic: ev } }),
          );
          return 'stop';
        }
      }
      return undefined;
    },
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

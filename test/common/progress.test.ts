/**
 * Progress on a terminal (issue 15): an evaluation between steps shows on the bar, its time stays
 * out of the step rate and the ETA adds the evaluations still to come at their measured length;
 * a line printed while a bar is drawn goes above the bar, not glued to its end. A fake terminal
 * stream and a fake clock: nothing here depends on the machine's speed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Progress, printLine } from '../../common/index.js';

function terminal() {
  const writes: string[] = [];
  const stream = { isTTY: true, write: (s: string) => writes.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, writes, last: () => writes[writes.length - 1] };
}

describe('progress: phases and lines above the bar', () => {
  let ci: string | undefined;
  before(() => {
    ci = process.env.CI;
    delete process.env.CI; // under CI a bar draws plain lines
  });
  after(() => {
    if (ci !== undefined) process.env.CI = ci;
  });

  test('an evaluation shows on the bar, is kept out of the rate, and its length is in the ETA', () => {
    let t = 0;
    const term = terminal();
    const p = new Progress({ label: 'at', total: 10, stream: term.stream, now: () => t });
    p.expectPhases('eval', 2);
    for (let step = 1; step <= 5; step++) {
      t += 1000;
      p.update(step, { loss: 0.5 });
    }
    // 1 step/s, 5 steps left, 2 evaluations of unknown length
    assert.match(term.last(), /at \[#{12}\.{12}\] 5\/10 1\/s 5\.0s eta 5\.0s \+ 2 eval loss=0\.5$/);
    p.beginPhase('eval');
    t += 10_000;
    p.phaseDetail('episode 2/3');
    assert.match(term.last(), / eval episode 2\/3… loss=0\.5$/);
    t += 10_000;
    p.endPhase();
    t += 1000;
    p.update(6, { loss: 0.4 });
    // 6 steps in 6 s of step time (the 20 s evaluation is not step time); 4 steps + 1 eval of 20 s
    assert.match(term.last(), / 6\/10 1\/s 26\.0s eta 24\.0s loss=0\.4$/);
    p.expectPhases('eval', 1);
    p.beginPhase('eval');
    t += 5000;
    p.phaseDetail('episode 1/3');
    // 4 steps + what is left of this evaluation (20 s measured, 5 s done)
    assert.match(term.last(), / eta 19\.0s eval episode 1\/3… /);
    p.endPhase();
    p.finish();
    assert.ok(term.last().endsWith('\n'));
  });

  test('a line printed while the bar is drawn goes above it; after finish, as a plain line', () => {
    const term = terminal();
    let t = 0;
    const p = new Progress({ label: 'toy', total: 4, stream: term.stream, now: () => t });
    t = 1000;
    p.update(2);
    const before = term.writes.length;
    printLine('eval at step 2: score 41.5');
    const [line, redraw] = term.writes.slice(before);
    // the bar's line is cleared first, so the text never follows the bar on one line
    assert.equal(line, '\r\x1b[Keval at step 2: score 41.5\n');
    assert.ok(redraw.startsWith('\r\x1b[Ktoy ['), JSON.stringify(redraw));
    p.finish();
    const err: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => err.push(s) > 0) as typeof process.stderr.write;
    try {
      printLine('run done');
    } finally {
      process.stderr.write = write;
    }
    assert.deepEqual(err, ['run done\n']);
  });
});

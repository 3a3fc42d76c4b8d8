/**
 * Runs a Python script file from the test venv with JSON on stdin (test/helpers/python.ts runs
 * code strings without stdin; the parity scripts take their episodes, megabytes of JSON, on stdin).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, venvPython } from '../../helpers/python.js';

/** Runs `python <script> args...` (script relative to the repo root); returns stdout, throws with stderr. */
export function runScript(script: string, args: string[] = [], stdin?: string): string {
  const res = spawnSync(venvPython(), [join(repoRoot, script), ...args], {
    cwd: repoRoot,
    input: stdin,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 256 * 2 ** 20,
    env: { ...process.env, PYTHONWARNINGS: 'ignore' },
  });
  if (res.error) throw new Error(`python ${script}: ${res.error.message}`);
  if (res.status !== 0)
    throw new Error(`python ${script} exited with ${res.status ?? res.signal}:\n${res.stderr.slice(-4000)}`);
  return res.stdout;
}

/** Runs a script that reads one JSON value on stdin and prints one JSON value. */
export function runScriptJSON<T>(script: string, input: unknown): T {
  return JSON.parse(runScript(script, [], JSON.stringify(input))) as T;
}

/**
 * Runs Python code in the project's venv (.venv, made by scripts/python-env.sh) for
 * interoperability checks. Generic: any room's tests may use it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

/** The venv's bin folder (RING_VENV overrides the venv path, as in scripts/python-env.sh). */
export function venvBin(): string {
  return join(process.env.RING_VENV ? join(repoRoot, process.env.RING_VENV) : join(repoRoot, '.venv'), 'bin');
}

/** The venv's python; throws a clear message when the venv is missing. */
export function venvPython(): string {
  const py = join(venvBin(), 'python');
  if (!existsSync(py))
    throw new Error(`${py} is missing: run \`bash scripts/python-env.sh\` (npm test does)`);
  return py;
}

export interface PythonResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `code` with the venv's python (synchronously). */
export function runPython(
  code: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): PythonResult {
  const r = spawnSync(venvPython(), ['-c', code], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, PYTHONWARNINGS: 'ignore', ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 180_000,
    maxBuffer: 64 * 2 ** 20,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `code` asynchronously (does not block the event loop, e.g. while a server runs in-process). */
export function runPythonAsync(
  code: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<PythonResult> {
  return new Promise((resolve) => {
    const child = spawn(venvPython(), ['-c', code], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, PYTHONWARNINGS: 'ignore', ...options.env },
      timeout: options.timeoutMs ?? 180_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/**
 * Runs `code`, which must print one JSON document as its last stdout line, and returns it parsed.
 * Fails with Python's stderr when the script fails.
 */
export async function pythonJson<T>(
  code: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<T> {
  const r = await runPythonAsync(code, options);
  if (r.code !== 0) throw new Error(`python failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

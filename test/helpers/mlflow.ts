/**
 * A real MLflow tracking server for tests: `mlflow server` from the project venv on 127.0.0.1 with
 * a free port, a SQLite backend and the artifact proxy (--serve-artifacts, --artifacts-destination)
 * in a temporary folder. `kill()` stops it abruptly (the outage test), `restart()` brings it back
 * on the same port and database, `stop()` ends it for good. Always call `stop()` (in `after`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { venvBin } from './python.js';
import { freeTcpPort } from '../../common/index.js';

/** A port the MLflow server can bind (below the ephemeral range: see common/net.ts). */
export const freePort = freeTcpPort;

export interface MlflowServer {
  uri: string;
  port: number;
  dir: string;
  /** Stops the server abruptly (SIGKILL to its process group): clients see connection errors. */
  kill(): Promise<void>;
  /** Starts it again on the same port and database; resolves when /health answers. */
  restart(): Promise<void>;
  /** Stops it for good. */
  stop(): Promise<void>;
}

async function waitHealthy(uri: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`mlflow server exited with code ${child.exitCode}`);
    try {
      const r = await fetch(`${uri}/health`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`mlflow server at ${uri} did not answer /health within ${timeoutMs} ms`);
}

export async function startMlflowServer(
  dir: string,
  options: { timeoutMs?: number } = {},
): Promise<MlflowServer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const uri = `http://127.0.0.1:${port}`;
  const timeoutMs = options.timeoutMs ?? 180_000;
  let child: ChildProcess | undefined;

  const launch = async () => {
    const log = openSync(join(dir, 'server.log'), 'a');
    // detached: its own process group, so kill() reaches the uvicorn worker too.
    child = spawn(
      join(venvBin(), 'mlflow'),
      [
        'server',
        '--backend-store-uri',
        `sqlite:///${join(dir, 'mlflow.db')}`,
        '--artifacts-destination',
        join(dir, 'artifacts'),
        '--serve-artifacts',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--workers',
        '1',
      ],
      { detached: true, stdio: ['ignore', log, log], env: { ...process.env, PYTHONWARNINGS: 'ignore' } },
    );
    await waitHealthy(uri, child, timeoutMs);
  };

  const killGroup = async (signal: NodeJS.Signals) => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    try {
      process.kill(-c.pid, signal);
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
    // Wait until the port is closed (the worker may outlive the parent by a moment).
    for (let i = 0; i < 40; i++) {
      try {
        await fetch(`${uri}/health`, { signal: AbortSignal.timeout(500) });
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        return;
      }
    }
  };

  await launch();
  return {
    uri,
    port,
    dir,
    kill: () => killGroup('SIGKILL'),
    restart: launch,
    stop: () => killGroup('SIGTERM'),
  };
}

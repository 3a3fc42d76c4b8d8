/**
 * `exp ui`: the MLflow UI on this project's runs in one command (issue 15). `mlflow ui` from a
 * fresh machine failed (nothing installed MLflow), and on MLflow 3 a file store also needs
 * MLFLOW_ALLOW_FILE_STORE=true. This finds MLflow (EXP_UI_MLFLOW, else a small venv of its own
 * made once by scripts/ui-env.sh, never the multi-GB test venv), starts `mlflow ui` on the file
 * store, waits until it answers, and prints the address of the newest experiment in MLflow's
 * model-training view (`?workflowType=machine_learning`; the GenAI view is MLflow 3's default).
 * Runs until Ctrl-C, which stops MLflow too. A tracking server (http…) needs nothing started: its
 * address is printed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../../../common/index.js';
import { PACKAGE_ROOT } from '../../paths.js';
import { openStore, resolveTrackingUri } from '../../tracking/index.js';

interface UiArgs {
  store?: string;
  host: string;
  port: number;
  open: boolean;
  'timeout-sec': number;
}

/** The mlflow executable: EXP_UI_MLFLOW, else the UI venv's (installed on first use). */
function findMlflow(): string {
  const given = process.env.EXP_UI_MLFLOW;
  if (given) {
    if (!existsSync(given))
      throw new InputError(
        `EXP_UI_MLFLOW: ${given} does not exist (expected the path of an mlflow executable)`,
      );
    return given;
  }
  const script = join(PACKAGE_ROOT, 'scripts', 'ui-env.sh');
  // stderr shows the one-time install notice; stdout's last line is the venv
  const r = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0)
    throw new InputError(
      `exp ui: could not set up MLflow with scripts/ui-env.sh (exit ${r.status ?? r.signal}); see the message above, or set EXP_UI_MLFLOW to an mlflow executable`,
    );
  const venv = r.stdout.trim().split('\n').pop() ?? '';
  return join(venv, 'bin', 'mlflow');
}

/** Resolves once `url` answers 200, or rejects after `timeoutMs` or when `child` exits. */
async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exit ${code ?? signal}`;
  });
  while (Date.now() < deadline) {
    if (exited)
      throw new Error(`exp ui: mlflow ui stopped before it answered (${exited}); its messages are above`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`exp ui: mlflow ui did not answer at ${url} within ${timeoutMs / 1000} s`);
}

/** Opens `url` in the desktop's browser when there is one; silent where there is none. */
function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const p = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    p.on('error', () => undefined);
    p.unref();
  } catch {
    // no browser: the printed address is enough
  }
}

export const uiCommand: CommandModule<object, UiArgs> = {
  command: 'ui',
  describe: 'Open the MLflow UI on the runs (installs MLflow in a small venv of its own on first use)',
  builder: (y: Argv) =>
    y
      .option('store', {
        type: 'string',
        describe: 'Tracking URI or file store folder (default: MLFLOW_TRACKING_URI, else ./mlruns)',
      })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
      .option('port', { type: 'number', default: 5000, describe: 'Port to listen on' })
      .option('open', {
        type: 'boolean',
        default: true,
        describe: 'Open a browser (--no-open: only print the address)',
      })
      .option('timeout-sec', {
        type: 'number',
        default: 180,
        describe: 'Seconds to wait for MLflow to start',
      }) as unknown as Argv<UiArgs>,
  handler: async (args) => {
    if (!Number.isInteger(args.port) || args.port < 1 || args.port > 65535)
      throw new InputError(`--port: expected an integer in 1…65535; got ${args.port}`);
    const uri = resolveTrackingUri(args.store);
    const view = (base: string, id?: string) =>
      `${base}/#/experiments${id ? `/${id}` : ''}?workflowType=machine_learning`;
    if (
      !/^https?:\/\//i.test(uri) &&
      !existsSync(resolve(uri.startsWith('file:') ? new URL(uri).pathname : uri))
    )
      throw new InputError(
        `exp ui: no runs at ${resolve(uri)} yet: run one first (npx exp run toy.yaml), or point --store / MLFLOW_TRACKING_URI at your runs`,
      );
    const store = openStore(uri, { readOnly: true });
    const experiments = await store.searchExperiments();
    // the newest experiment with runs is the one a user just ran
    let newest: { id: string; start: number } | undefined;
    for (const e of experiments) {
      const runs = await store.searchRuns([e.experimentId], { maxResults: 1 });
      const start = runs[0]?.info.startTime ?? -1;
      if (runs.length && (!newest || start > newest.start)) newest = { id: e.experimentId, start };
    }
    if (/^https?:\/\//i.test(uri)) {
      process.stdout.write(
        `runs are on the tracking server: open ${view(uri.replace(/\/+$/, ''), newest?.id)}\n`,
      );
      return;
    }
    const root = resolve(uri.startsWith('file:') ? new URL(uri).pathname : uri);
    const mlflow = findMlflow();
    const base = `http://${args.host}:${args.port}`;
    process.stderr.write(`exp ui: starting MLflow on ${root} …\n`);
    const child = spawn(
      mlflow,
      [
        'ui',
        '--backend-store-uri',
        pathToFileURL(root).href,
        '--host',
        args.host,
        '--port',
        String(args.port),
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        // MLflow 3 refuses a file store without this (its file store is in maintenance mode)
        env: { ...process.env, MLFLOW_ALLOW_FILE_STORE: 'true' },
        // its own process group: `mlflow ui` runs the web server as a child of its own, and a
        // signal to the group reaches both (a signal to mlflow alone left the server running)
        detached: true,
      },
    );
    const stop = (signal: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, signal);
      } catch {
        child.kill(signal);
      }
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    try {
      await waitForHealth(`${base}/health`, child, args['timeout-sec'] * 1000);
    } catch (err) {
      stop('SIGTERM');
      throw err;
    }
    const url = view(base, newest?.id);
    process.stdout.write(`MLflow UI: ${url}\n(Ctrl-C stops it)\n`);
    if (args.open) openBrowser(url);
    const code = await new Promise<number>((done) => child.once('exit', (c) => done(c ?? 0)));
    // Ctrl-C: MLflow exits on the forwarded signal; that is a normal end
    process.exitCode = code === 0 || code === 130 || code === 143 || child.signalCode ? 0 : code;
  },
};

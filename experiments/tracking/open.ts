/** Picks the store for a tracking URI: config, else MLFLOW_TRACKING_URI, else `./mlruns`. */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../common/index.js';
import { spoolDir } from '../paths.js';
import { FileStore } from './file-store.js';
import { RestStore, type RestStoreOptions } from './rest-store.js';
import type { TrackingStore } from './types.js';

/** The URI a run uses: the config's when set, else the environment's, else `./mlruns`. */
export function resolveTrackingUri(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  return configured || env.MLFLOW_TRACKING_URI || './mlruns';
}

/** `readOnly`: a file store is not created when missing (listing, dry runs). */
export function openStore(
  uri: string,
  options: Partial<RestStoreOptions> & { readOnly?: boolean } = {},
): TrackingStore {
  const { readOnly, ...rest } = options;
  if (/^https?:\/\//i.test(uri)) return new RestStore(uri, { spoolDir: spoolDir(), ...rest });
  if (uri.startsWith('file:')) return new FileStore(fileURLToPath(uri), { readOnly });
  if (/^[a-z][a-z0-9+.-]*:/i.test(uri) && !/^[a-z]:[\\/]/i.test(uri))
    throw new InputError(
      `tracking URI '${uri}': expected http(s)://host:port (an MLflow server) or a local folder / file:// URI (the file store); for a database backend, run \`mlflow server --backend-store-uri ${uri}\` and point at the server`,
    );
  return new FileStore(resolve(uri), { readOnly });
}

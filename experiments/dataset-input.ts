/**
 * Describing a dataset file as an MLflow dataset input (`tracker.dataset(info, 'training')`):
 * digest = the first 16 hex digits of the file's SHA-256 (MLflow allows ≤ 36 characters), source
 * = its absolute path, schema = the Arrow schema's fields (for Arrow IPC files), profile = size
 * and the schema's metadata (the datasets/ writer keeps episode and step counts there).
 */
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { RecordBatchReader } from 'apache-arrow';
import type { DatasetInfo } from './tracking/index.js';

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Fields and metadata of an Arrow IPC file or stream, read from its first messages only. */
async function arrowSchema(
  path: string,
): Promise<{ fields: { name: string; type: string }[]; metadata: Record<string, string> } | undefined> {
  try {
    const reader = await RecordBatchReader.from(createReadStream(path));
    await reader.open();
    const schema = reader.schema;
    const out = {
      fields: schema.fields.map((f) => ({ name: f.name, type: String(f.type) })),
      metadata: Object.fromEntries(schema.metadata),
    };
    await reader.cancel();
    return out;
  } catch {
    return undefined;
  }
}

export async function datasetInfoFromFile(path: string, name = basename(path)): Promise<DatasetInfo> {
  const abs = resolve(path);
  const schema = /\.(arrow|feather|ipc)$/i.test(abs) ? await arrowSchema(abs) : undefined;
  const profile: Record<string, unknown> = { bytes: statSync(abs).size };
  if (schema)
    for (const [k, v] of Object.entries(schema.metadata))
      profile[k] = v.length > 2000 ? `${v.slice(0, 2000)}…` : v;
  return {
    name,
    digest: (await sha256(abs)).slice(0, 16),
    sourceType: 'local',
    source: JSON.stringify({ uri: abs }),
    schema: schema ? JSON.stringify({ arrow_fields: schema.fields }) : undefined,
    profile: JSON.stringify(profile),
  };
}

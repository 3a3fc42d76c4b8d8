/**
 * Describing a dataset as an MLflow dataset input (`tracker.dataset(info, 'training')`), in the
 * form MLflow's own `mlflow.data` writes, so `mlflow.data.get_source(dataset_input.dataset)` and
 * the UI's dataset drawer read it (issue 15):
 * - source_type `local`, source `{"uri": "<absolute path>"}` (MLflow's LocalArtifactDatasetSource
 *   as JSON; a bare path made get_source raise);
 * - digest: a given content digest, else the first 16 hex digits of the file's SHA-256 (MLflow
 *   allows ≤ 36 characters);
 * - schema `{"mlflow_colspec": [...]}` (mlflow.types.Schema.to_dict) from the Arrow schema: of the
 *   file, or of a Minari-layout folder's first episode file;
 * - profile: size and the Arrow schema's metadata (episode and step counts are there).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { type DataType, type Field, Precision, RecordBatchReader, Type } from 'apache-arrow';
import type { DatasetInfo } from './tracking/index.js';

/** SHA-256 of a file, or of a folder's files (relative names and contents, in name order). */
async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  const add = async (p: string, rel: string): Promise<void> => {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p).sort()) await add(join(p, f), `${rel}/${f}`);
      return;
    }
    h.update(`${rel}\0`);
    for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  };
  if (statSync(path).isDirectory()) await add(path, '.');
  else for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** One MLflow ColSpec type as JSON (mlflow/types/schema.py: DataType, Array, Object). */
type MlflowType =
  | { type: string }
  | { type: 'array'; items: MlflowType }
  | { type: 'object'; properties: Record<string, MlflowType & { required: boolean }> };

/** An Arrow type's MLflow data type name: float32 → float, float64 → double, …; else undefined. */
function scalarType(t: DataType): string | undefined {
  switch (t.typeId) {
    case Type.Float:
      return (t as unknown as { precision: Precision }).precision === Precision.DOUBLE ? 'double' : 'float';
    case Type.Float16:
    case Type.Float32:
      return 'float';
    case Type.Float64:
      return 'double';
    case Type.Int:
    case Type.Int8:
    case Type.Int16:
    case Type.Int32:
    case Type.Uint8:
    case Type.Uint16:
      return (t as unknown as { bitWidth: number }).bitWidth > 32 ? 'long' : 'integer';
    case Type.Int64:
    case Type.Uint32:
    case Type.Uint64:
      return 'long';
    case Type.Bool:
      return 'boolean';
    case Type.Utf8:
    case Type.LargeUtf8:
      return 'string';
    case Type.Binary:
    case Type.LargeBinary:
    case Type.FixedSizeBinary:
      return 'binary';
    case Type.Timestamp:
    case Type.Date:
      return 'datetime';
    default:
      return undefined;
  }
}

/** An Arrow type as MLflow's: scalars by name, lists → array, structs → object. */
function mlflowType(t: DataType): MlflowType {
  if (t.typeId === Type.List || t.typeId === Type.FixedSizeList)
    return { type: 'array', items: mlflowType((t.children[0] as Field).type) };
  if (t.typeId === Type.Struct)
    return {
      type: 'object',
      properties: Object.fromEntries(
        (t.children as Field[]).map((f) => [f.name, { ...mlflowType(f.type), required: !f.nullable }]),
      ),
    };
  // NOTE: a type MLflow has no name for (dictionary, union, …) is described as a string
  return { type: scalarType(t) ?? 'string' };
}

/** `{"mlflow_colspec": [...]}` for Arrow fields (what mlflow.types.Schema.from_json reads). */
export function mlflowSchemaOf(fields: Field[]): string {
  return JSON.stringify({
    mlflow_colspec: fields.map((f) => ({ ...mlflowType(f.type), name: f.name, required: !f.nullable })),
  });
}

/** Fields and metadata of an Arrow IPC file or stream, read from its first messages only. */
async function arrowSchema(
  path: string,
): Promise<{ fields: Field[]; metadata: Record<string, string> } | undefined> {
  try {
    const reader = await RecordBatchReader.from(createReadStream(path));
    await reader.open();
    const schema = reader.schema;
    const out = { fields: schema.fields, metadata: Object.fromEntries(schema.metadata) };
    await reader.cancel();
    return out;
  } catch {
    return undefined;
  }
}

/** The Arrow file whose schema stands for a dataset: the file, or a Minari folder's first episode part. */
function schemaFile(abs: string): string | undefined {
  if (statSync(abs).isFile()) return /\.(arrow|feather|ipc)$/i.test(abs) ? abs : undefined;
  const first = join(abs, 'data', '0');
  if (!existsSync(first)) return undefined;
  const part = readdirSync(first)
    .filter((f) => f.endsWith('.arrow'))
    .sort()[0];
  return part ? join(first, part) : undefined;
}

/** Total bytes of a file or a folder's files. */
function sizeOf(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0);
}

export interface DatasetInputOptions {
  /** The dataset's name in MLflow; default the file name. */
  name?: string;
  /** A content digest already known (the datasets/ writer's); default a SHA-256 of the file. */
  digest?: string;
  /** More profile entries (episode and step counts, …). */
  profile?: Record<string, unknown>;
}

/** An MLflow dataset input for a dataset file (Arrow IPC or any file) or a Minari-layout folder. */
export async function datasetInfoFromFile(
  path: string,
  nameOrOptions: string | DatasetInputOptions = {},
): Promise<DatasetInfo> {
  const o = typeof nameOrOptions === 'string' ? { name: nameOrOptions } : nameOrOptions;
  const abs = resolve(path);
  const file = schemaFile(abs);
  const schema = file ? await arrowSchema(file) : undefined;
  const profile: Record<string, unknown> = { bytes: sizeOf(abs), ...o.profile };
  if (schema)
    for (const [k, v] of Object.entries(schema.metadata))
      profile[k] = v.length > 2000 ? `${v.slice(0, 2000)}…` : v;
  return {
    name: o.name ?? basename(abs),
    digest: o.digest ?? (await sha256(abs)).slice(0, 16),
    sourceType: 'local',
    source: JSON.stringify({ uri: abs }),
    schema: schema ? mlflowSchemaOf(schema.fields) : undefined,
    profile: JSON.stringify(profile),
  };
}

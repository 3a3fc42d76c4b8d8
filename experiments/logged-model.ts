/**
 * Trained policies and LMs as MLflow 3 logged models (issue 15: runs logged none, so
 * `search_logged_models` found nothing). A model is its files plus an `MLmodel` file in MLflow's
 * format with a signature (tensor specs of its inputs and outputs), so
 * `mlflow.models.get_model_info("models:/<id>")` reads it and the UI lists it under the run.
 *
 * The flavor is `ring_harness` (what to load the files with, said in the flavor's `loader`):
 * MLflow has no flavor for a tfjs model, so `mlflow.pyfunc.load_model` cannot load these; the
 * LM's files are a Hugging Face folder `LlamaForCausalLM.from_pretrained` loads as they are.
 */
import { randomUUID } from 'node:crypto';
import YAML from 'yaml';
import type { KeyValue, LoggedModelInfo, RunTracker } from './tracking/index.js';

/** One input or output of a model: MLflow's TensorSpec (`-1`: a dimension of any size). */
export interface TensorSpec {
  name: string;
  dtype: 'float32' | 'float64' | 'int32' | 'int64';
  shape: number[];
}

export interface ModelToLog {
  /** The model's name in MLflow (`policy`, `llama`). */
  name: string;
  /** MLflow's model_type: what it is (`agentic-transformer`, `llama`, …). */
  modelType: string;
  /** Files of the model: local path → path inside the model's artifacts. */
  files: { local: string; path: string }[];
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** How to load the files (the flavor's `loader` line) and more flavor fields. */
  flavor: { loader: string } & Record<string, string | number | boolean>;
  params?: Record<string, string | number | boolean>;
  /** Training step the model is from (the run output's step). */
  step: number;
}

const tensorSpecs = (specs: TensorSpec[]) =>
  JSON.stringify(
    specs.map((t) => ({ type: 'tensor', 'tensor-spec': { dtype: t.dtype, shape: t.shape }, name: t.name })),
  );

/** The `MLmodel` file (mlflow.models.Model.to_yaml's keys) for a model of run `runId`. */
export function mlmodelYaml(m: ModelToLog, runId: string, modelId: string): string {
  const now = new Date().toISOString().replace('T', ' ').replace('Z', '000');
  return YAML.stringify({
    artifact_path: m.name,
    flavors: { ring_harness: { ...m.flavor, model_type: m.modelType } },
    model_id: modelId,
    model_uuid: randomUUID().replaceAll('-', ''),
    run_id: runId,
    signature: { inputs: tensorSpecs(m.inputs), outputs: tensorSpecs(m.outputs), params: null },
    utc_time_created: now,
  });
}

/** Logs `m` as a logged model of the tracker's run (its MLmodel names the id the store made). */
export async function logModel(tracker: RunTracker, m: ModelToLog): Promise<LoggedModelInfo> {
  const run = await tracker.store.getRun(tracker.runId);
  const params: KeyValue[] = Object.entries(m.params ?? {}).map(([key, v]) => ({ key, value: String(v) }));
  return tracker.store.logModel({
    experimentId: run.info.experimentId,
    runId: tracker.runId,
    name: m.name,
    modelType: m.modelType,
    params,
    tags: [],
    files: m.files,
    mlmodel: (modelId) => mlmodelYaml(m, tracker.runId, modelId),
    step: m.step,
  });
}

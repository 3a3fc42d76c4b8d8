/**
 * lm/: a LLaMA-style decoder on ring/ attention, Hugging Face safetensors checkpoints, tokenizers,
 * the ShareGPT finetuning pipeline and the LongChat line-retrieval task (issue 8), and their
 * trainers: `finetune` and `trainLineRetrieval` / `evaluateLineRetrieval` (issue 13).
 */
export {
  argmax,
  blockConfigOf,
  checkLlamaConfig,
  DEFAULT_RUNTIME,
  fromHfConfig,
  type GenerateOptions,
  type HfLlamaConfig,
  IGNORE_INDEX,
  type KvCache,
  type LlamaConfig,
  LlamaModel,
  type LlamaRuntime,
  type LlamaWeights,
  llamaParameterCount,
  maskedCrossEntropy,
  sampleToken,
  shiftLabels,
  toHfConfig,
} from './model.js';
export { llamaMatmulWeights, llamaTrainingFlops } from './flops.js';
export {
  CheckpointReader,
  encodeSafetensors,
  hfStateDict,
  loadLlama,
  type NamedTensor,
  readLlamaConfig,
  type SafetensorsEntry,
  SafetensorsFile,
  type SaveOptions,
  saveLlama,
} from './safetensors.js';
export {
  type EncodeOptions,
  HfTokenizer,
  type HfTokenizerJson,
  LlamaSentencePiece,
  llamaTokenizerJson,
  loadTokenizer,
  type Tokenizer,
} from './tokenizer.js';
export {
  type BuildOptions,
  type BuildReport,
  buildShareGptDataset,
  type CleanReport,
  type Conversation,
  cleanShareGpt,
  type DropReason,
  type Example,
  type PackedSequence,
  pack,
  readShareGptRecords,
  renderVicunaPairs,
  type TrimCounts,
  toExamples,
  VICUNA_SYSTEM,
  windowTargets,
} from './sharegpt.js';
export {
  LINE_HEADER,
  type LineRetrievalCase,
  LineTokenizer,
  lastInteger,
  makeLineRetrievalCase,
} from './line-retrieval.js';
export {
  checkFinetuneOptions,
  FINETUNE_DEFAULTS,
  type FinetuneOptions,
  type FinetuneResult,
  finetune,
  finetuneRuntime,
  learningRate,
} from './finetune.js';
export {
  buildShareGptData,
  finetuneModel,
  type LlamaShape,
  resolveDataPath,
  SHAREGPT_SOURCE_DEFAULTS,
  type ShareGptData,
  type ShareGptSource,
} from './finetune-data.js';
export {
  answerPositions,
  type EncodedLineCase,
  encodeLineCase,
  lineAnswerCorrect,
  lineBatch,
} from './line-retrieval.js';
export {
  accuracyCurves,
  evaluateLineRetrieval,
  evaluateOnDevice,
  type LineRetrievalEvaluation,
  type LineRetrievalRow,
} from './line-retrieval-eval.js';
export {
  checkLineRetrievalOptions,
  curriculumCap,
  LINE_RETRIEVAL_DEFAULTS,
  type LineRetrievalOptions,
  type LineRetrievalTrained,
  lineRetrievalConfig,
  lineRetrievalRuntime,
  trainLineRetrieval,
} from './line-retrieval-train.js';
export { lineWindow, trainLineRetrievalOnDevices } from './line-retrieval-ring.js';
export {
  type HfRope,
  type RopeScaling,
  type RopeScalingType,
  ropeFrequencies,
  ropeFromHfConfig,
} from './rope.js';
// the trainers' options as data: the recipes' config schemas derive from them (issue 13)
export {
  LINE_RETRIEVAL_OPTIONS,
  type LineRetrievalRunOptions,
  SHAREGPT_FINETUNE_OPTIONS,
  type ShareGptFinetuneOptions,
} from './options.js';

/** Where sweep cells and ring ranks run besides local processes: SLURM and Kubernetes (issue 19). */
export { type IndexedJobOptions, indexedJobManifest } from './k8s.js';
export {
  type ArrayCell,
  type ArrayJobSpec,
  arrayIndexList,
  arrayStates,
  cellScript,
  describeElement,
  type ElementState,
  parseIndexList,
  runStatusOfState,
  type SlurmResources,
  sbatch,
  scancel,
  shellQuote,
  srunArgs,
  writeFileAtomic,
} from './slurm.js';

// The public LoRKD API: the decomposition model with low-rank expert convs, the EKS execution
// strategies and their routing, deployment (fusion and task knowledge switch) and checkpoints.
export { DecompositionModel, type DecompositionConfig, type DecompositionOutput, type RoutedOutput, type TaskSpec, type ExpertTaskSpec, type RankSpec } from './decomposition.js';
export { ExpertConv2d, type ExpertOptions, type ExpertTask } from './expert-conv.js';
export { TaskParameters, packFactors, type TaskFactors, type PackedFactors } from './task-factors.js';
export { parseRankSpec, parseRankList, rankFor, rankLabel, ranksOf, maxRank } from './ranks.js';
export { STRATEGIES, RUN, expertDelta, type Strategy, type StrategyOption, type ExpertWeights } from './strategies.js';
export { AutoStrategy, AUTO_CANDIDATES, type AutoMeasurement } from './auto.js';
export { Routing, sortByTask } from './routing.js';
export { expertModel, fusedWeight, DeployedExpert } from './deploy.js';
export {
  saveDecomposition,
  loadDecomposition,
  readDecomposition,
  checkpointConfig,
  splitStackedFactors,
  DECOMPOSITION_FORMAT,
  type DecompositionCheckpointConfig,
  type LoadDecompositionOptions,
  type LoadedDecomposition,
} from './checkpoint.js';

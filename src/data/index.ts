// lorkd data layer: .npy/.npz reading, MedMNIST, multi-task suites, sampling, transforms, loading.
export { type NpyArray, type NpyDType, parseNpy, loadNpy } from './npy.js';
export { type Npz, type NpzOptions, parseNpz, loadNpz, crc32 } from './npz.js';
export { type Split, SPLITS, type TaskType, type ImageSplit, type TaskData, classCounts } from './dataset.js';
export {
  type MedMnistInfo,
  type MedMnistOptions,
  type MedMnistData,
  MEDMNIST_INFO,
  BUNDLED_MEDMNIST,
  loadMedMnist,
  medmnistKey,
  medmnistDir,
  tasks64Dir,
  packageRoot,
  loadTask,
  loadTasks,
} from './medmnist.js';
export { TASKS64, MED6, NAMED_SUITES, expandTaskList } from './bundled.js';
export { type InfoJson, parseInfoJson, readInfoJson, infoJsonPath } from './info-json.js';
export { type SuiteTask, SuiteSplit, TaskSuite } from './suite.js';
export { type SamplerOptions, BatchSampler } from './sampler.js';
export { Rng } from './rng.js';
export { type GatherSource, gatherImages, sizeRuns } from './gather.js';
export { type Triple, type TransformOptions, type Batch, type TaskBatch, type SortedBatch, imagesToTensor, batchImages, makeBatch, makeTaskBatch, sortByTaskStable } from './transforms.js';
export { Routing, sortByTask } from './routing.js';
export { type LoaderOptions, type BatchPlan, DataLoader } from './loader.js';

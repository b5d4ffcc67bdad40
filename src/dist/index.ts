// Data-parallel training on libtorch's c10d (docs/DISTRIBUTED.md).
export { distEnv, rankDevice, distBackend, type DistEnv } from './env.js';
export { ProcessGroup, distAvailable, collectiveError } from './process-group.js';
export { DistributedDataParallel, bucketsBySize, type DdpOptions } from './ddp.js';
export { SyncBatchNorm2d, convertSyncBatchNorm } from './sync-batchnorm.js';
export { shardRange, type Shard } from '../data/shard.js';

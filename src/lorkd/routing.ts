// The routing of a task-sorted batch lives in the data layer, where batches are made and sorted
// (docs/ARCHITECTURE.md, "The seam"); re-exported here for the LoRKD API.
export { Routing, sortByTask } from '../data/routing.js';

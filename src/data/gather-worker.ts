// Prefetch worker: gathers (and flips) the uint8 images of requested batches while the main
// thread trains. It reads the task images from SharedArrayBuffers and transfers each result.
// It never loads the native addon.
import { parentPort, workerData } from 'node:worker_threads';
import { gatherImages, type GatherSource } from './gather.js';

export interface GatherRequest {
  id: number;
  indices: Int32Array;
  flips: Uint8Array;
}
export type GatherReply = { id: number; images: Uint8Array } | { id: number; error: string };

const src = workerData as GatherSource;
const port = parentPort;
if (port) {
  port.on('message', (m: GatherRequest) => {
    let reply: GatherReply;
    try {
      const images = gatherImages(src, m.indices, m.flips);
      reply = { id: m.id, images };
      port.postMessage(reply, [images.buffer as ArrayBuffer]);
    } catch (e) {
      reply = { id: m.id, error: (e as Error).message };
      port.postMessage(reply);
    }
  });
}

// A decode worker (piscina, see decode-pool.ts): image bytes -> the department's model input,
// float32 (3, S, S). It loads no libtorch; its heap is capped and it runs at a lower priority
// than the service's event loop. A UserError (corrupt image, over a limit) is returned as
// {error} so that its one line reaches the client; anything else (out of heap, a deadline) ends
// the worker and is answered by the pool.
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { decodeImage } from '../data/image-decode.js';
import { type InputSpec, imageToInput } from '../data/image-input.js';

export interface DecodeTask {
  bytes: Uint8Array;
  name: string;
  spec: InputSpec;
  /** Told when the decode starts (the pool's deadline counts from then). */
  started: MessagePort;
}

/** The input (moved, not copied), or the one-line refusal. */
export type DecodeReply = Float32Array | { error: string };

export default function decode(t: DecodeTask): DecodeReply {
  t.started.postMessage(0);
  t.started.close();
  try {
    return Piscina.move(imageToInput(decodeImage(t.bytes, t.name), t.spec)) as Float32Array;
  } catch (e) {
    if ((e as Error)?.name === 'UserError') return { error: (e as Error).message.split('\n')[0]! };
    throw e;
  }
}

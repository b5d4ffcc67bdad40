// A department served by onnxruntime-node: an expert exported with `lorkd export --format onnx`
// (a fused expert, BatchNorm and all), in a folder given to `lorkd serve --experts`. It is the
// deployment a user could pick without lorkd's engine, behind the same HTTP API, micro-batcher
// and preprocessing; bench/serve.ts measures it as `plain-ort`. onnxruntime runs a session on
// its own threads, so the event loop is free while it runs, as with lorkd's forward worker.
import { statSync } from 'node:fs';
import { type Tensor, cat } from '../tensor/index.js';
import { type OnnxExpert, loadOnnxExpert, softmaxRows } from '../export/onnx/runtime.js';

export class OrtExpert {
  private constructor(
    readonly expert: OnnxExpert,
    /** Size of the ONNX file (its weights, for lorkd_model_bytes). */
    readonly bytes: number,
  ) {}

  /** The session of `file`, with `threads` intra-op threads. */
  static async load(file: string, threads: number): Promise<OrtExpert> {
    return new OrtExpert(await loadOnnxExpert(file, { threads }), statSync(file).size);
  }

  /** Softmax probabilities of single-image inputs (1, C, S, S), in input order. */
  async probs(inputs: Tensor[]): Promise<Float32Array[]> {
    const batch = cat(inputs, 0);
    let logits: Float32Array;
    try {
      logits = await this.expert.logits(batch);
    } finally {
      batch.dispose();
    }
    const k = this.expert.meta.classNames.length;
    const p = softmaxRows(logits, k);
    return inputs.map((_, i) => Float32Array.from(p.subarray(i * k, (i + 1) * k)));
  }

  dispose(): void {
    void this.expert.release();
  }
}

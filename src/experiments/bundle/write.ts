// `lorkd export --format bundle`: one task's network of a run as a MONAI bundle folder, with a
// model card (docs/README.md) and the training data's licenses (LICENSE):
//   configs/metadata.json  configs/inference.json  models/model.onnx  models/model.safetensors
//   docs/README.md  LICENSE
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { env as ortEnv } from 'onnxruntime-node';
import { libtorchVersion } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import { fileError, writeFileAtomic } from '../../io/atomic.js';
import { loadExpertFile, lorkdVersion } from '../../export/expert-file.js';
import { decodeModel, expertToOnnx, writeOnnx } from '../../export/onnx/index.js';
import { traceLayers } from '../../eval/complexity.js';
import type { Progress } from '../progress.js';
import { bundleSource, type BundleSource } from './source.js';
import { datasetProvenance } from './provenance.js';
import { bundleMetadata, inferenceConfig } from './metadata.js';
import { licenseText, modelCard } from './model-card.js';

export interface BundleOptions {
  run: string;
  task: string;
  out: string;
  /** In a compare folder: whose network (default lorkd). */
  method?: string;
  progress: Progress;
}

export interface BundleResult {
  dir: string;
  files: string[];
  source: BundleSource;
}

/** The `cam` output's [h, w] as the ONNX graph declares it. */
function camShape(bytes: Uint8Array): [number, number] {
  type Dim = { dim_value?: number };
  const g = decodeModel(bytes).graph as { output: { name: string; type: { tensor_type: { shape: { dim: Dim[] } } } }[] };
  const dims = g.output.find((o) => o.name === 'cam')!.type.tensor_type.shape.dim.slice(1).map((d) => Number(d.dim_value));
  return [dims[0]!, dims[1]!];
}

export function writeBundle(o: BundleOptions): BundleResult {
  const dir = path.resolve(o.out);
  if (existsSync(dir) && readdirSync(dir).length) throw new UserError(`${o.out} exists and is not empty; a bundle is written into a new folder`);
  const created = !existsSync(dir);
  try {
    return write(o, dir);
  } catch (e) {
    // A refused or failed export leaves no half-written bundle behind.
    if (created) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

function write(o: BundleOptions, dir: string): BundleResult {
  try {
    for (const d of ['configs', 'models', 'docs']) mkdirSync(path.join(dir, d), { recursive: true });
  } catch (e) {
    throw fileError(dir, e, 'create');
  }
  const file = (f: string): string => path.join(dir, f);
  const source = bundleSource(o.run, o.task, file('models/model.safetensors'), o.method);
  o.progress.log(`[bundle] ${o.task}: ${source.method} network of ${o.run}`);
  const { model, meta } = loadExpertFile(file('models/model.safetensors'));
  let bytes: Uint8Array;
  let cost: { params: number; macs: number };
  try {
    o.progress.log('[bundle] models/model.onnx');
    bytes = expertToOnnx(model, meta);
    writeOnnx(file('models/model.onnx'), bytes);
    model.eval();
    cost = { params: model.parameters().reduce((n, p) => n + p.numel, 0), macs: traceLayers(model, [meta.channels, meta.inputSize, meta.inputSize]).reduce((n, l) => n + l.macs, 0) };
  } finally {
    model.dispose();
  }
  const data = source.tasks.map((t) => datasetProvenance(t));
  const versions = { lorkd: lorkdVersion(), libtorch: libtorchVersion(), onnxruntime: ortEnv.versions.node ?? ortEnv.versions.common };
  const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';
  const mine = data.find((d) => d.task === o.task) ?? datasetProvenance(o.task);
  writeFileAtomic(file('configs/metadata.json'), json(bundleMetadata(meta, source, mine, versions, camShape(bytes))));
  writeFileAtomic(file('configs/inference.json'), json(inferenceConfig(meta)));
  writeFileAtomic(file('docs/README.md'), modelCard(meta, source, data, cost, versions.lorkd));
  writeFileAtomic(file('LICENSE'), licenseText(data));
  const files = ['configs/metadata.json', 'configs/inference.json', 'models/model.onnx', 'models/model.safetensors', 'docs/README.md', 'LICENSE'].map(file);
  o.progress.log(`[bundle] written: ${dir}`);
  return { dir, files, source };
}

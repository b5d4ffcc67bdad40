// docs/README.md of a bundle: a model card with YAML front matter as model hubs read it (license,
// base model, datasets, metrics, tags), then what the network is, its data and their provenance,
// its test metrics (intervals when the run has seeds), its size and cost, intended use and limits.
// And LICENSE: the training data's licenses, which the weights carry.
import type { ExpertMeta } from '../../export/expert-file.js';
import type { Estimate } from '../stats.js';
import { findMethodSpec } from '../methods/index.js';
import type { BundleSource } from './source.js';
import type { DatasetProvenance } from './provenance.js';

/** A YAML scalar: JSON strings are valid YAML double-quoted scalars. */
const y = (v: string | number): string => (typeof v === 'number' ? String(v) : JSON.stringify(v));

const pct = (x: number): string => (100 * x).toFixed(1);
function estimateText(e: Estimate, scale: (x: number) => string): string {
  return e.ci95 ? `${scale(e.mean)} [${scale(e.ci95[0])}, ${scale(e.ci95[1])}]` : scale(e.mean);
}

/** One license id for the front matter: the data's when all agree, else "other". */
export function cardLicense(data: DatasetProvenance[]): string {
  const ids = [...new Set(data.map((d) => d.license))];
  return ids.length === 1 && ids[0] !== 'unknown' ? ids[0]! : 'other';
}

export interface CardCost {
  params: number;
  /** Multiply-accumulates per image at the input size (ptflops' convention). */
  macs: number;
}

export function modelCard(meta: ExpertMeta, src: BundleSource, data: DatasetProvenance[], cost: CardCost, version: string): string {
  const m = src.metrics;
  const front = [
    '---',
    `license: ${y(cardLicense(data))}`,
    'library_name: onnx',
    'pipeline_tag: image-classification',
    'tags: ["medical-imaging", "image-classification", "lorkd", "knowledge-distillation", "monai-bundle"]',
    `base_model: ${y(src.base ? `${src.base.model} foundation, sha256:${src.base.sha256}` : 'none (trained without a teacher)')}`,
    `datasets: [${data.map((d) => y(d.id)).join(', ')}]`,
    ...(m
      ? [
          'metrics: ["accuracy", "roc_auc"]',
          'model-index:',
          `  - name: ${y(`lorkd-${src.method}-${meta.task}`)}`,
          '    results:',
          '      - task: { type: "image-classification" }',
          `        dataset: { name: ${y(meta.task)}, type: ${y(data.find((d) => d.task === meta.task)?.id ?? meta.task)}, split: "test" }`,
          '        metrics:',
          `          - { type: "accuracy", value: ${y(Number(m.accuracy.mean.toFixed(4)))} }`,
          `          - { type: "roc_auc", value: ${y(Number(m.auc.mean.toFixed(4)))} }`,
        ]
      : []),
    '---',
  ];
  const metrics = m
    ? [`| metric (test split) | value |`, '|---|---|', `| accuracy % | ${estimateText(m.accuracy, pct)} |`, `| AUC | ${estimateText(m.auc, (x) => x.toFixed(3))} |`, '', `${m.note}.`]
    : ['No test metrics were found in the run directory (run `lorkd eval --run DIR` first).'];
  const datasets = data.flatMap((d) => [`- **${d.task}** (${d.id}): license ${d.licenseText}${d.file ? `; provenance: lorkd's ${d.file}` : ''}`, ...d.lines.map((l) => `  - ${l}`)]);
  return [
    ...front,
    '',
    `# ${findMethodSpec(src.method)?.label ?? src.method} network for ${meta.task} (lorkd)`,
    '',
    `A ${meta.model} classifier over ${meta.classNames.length} classes (${meta.classNames.map((c) => JSON.stringify(c)).join(', ')}), trained by lorkd ${version} with its ${src.method} method (Low-Rank Knowledge Decomposition of medical foundation models, CVPR 2024) on the tasks ${src.tasks.join(', ')}.`,
    '',
    '## Base model',
    '',
    src.base ? `Distilled from the foundation \`${src.base.file}\` (${src.base.model}), sha256 \`${src.base.sha256}\`.` : 'No teacher: the run did not distil.',
    '',
    '## Files',
    '',
    '- `models/model.onnx`: input `input` float32 [N, 3, S, S], preprocessed; outputs `logits` [N, classes] and `cam` (class activation map of the predicted class).',
    '- `models/model.safetensors`: the same weights, torchvision names (`lorkd predict --model`, `lorkd serve`).',
    '- `configs/metadata.json`, `configs/inference.json`: the MONAI bundle description and preprocessing.',
    '',
    '## Preprocessing',
    '',
    `RGB (grey images repeated to 3 channels), bilinear resize to ${meta.inputSize}x${meta.inputSize} (align_corners false, no antialias), pixel / 255, then (x - mean) / std per channel with mean ${JSON.stringify(meta.mean)} and std ${JSON.stringify(meta.std)}.`,
    '',
    '## Training data',
    '',
    ...datasets,
    '',
    '## Evaluation',
    '',
    ...metrics,
    '',
    '## Size and cost',
    '',
    `${(cost.params / 1e6).toFixed(3)} M parameters; ${(cost.macs / 1e6).toFixed(1)} M multiply-accumulates per image at ${meta.inputSize}x${meta.inputSize}.`,
    '',
    '## Intended use',
    '',
    'Research on model decomposition and deployment of medical image classifiers. Not a medical device: not for diagnosis, triage or any clinical decision.',
    '',
    '## Limits',
    '',
    `- Trained and tested only on the data above${data.some((d) => d.id.startsWith('medmnist/')) ? ' (MedMNIST: 28x28 images, far below clinical resolution)' : ''}; other scanners, sites and populations are untested.`,
    '- The metrics are on one test split; they are not a clinical validation.',
    '- MONAI\'s image readers may transpose 2-D images relative to lorkd\'s; check the orientation of your inputs against `lorkd predict`.',
    '- The bundle holds ONNX and safetensors weights, not a pickled `models/model.pt`.',
    '',
  ].join('\n');
}

export function licenseText(data: DatasetProvenance[]): string {
  return [
    'The weights in this bundle were trained on the data sets below; they carry those data sets\' license terms.',
    '',
    ...data.map((d) => `${d.task} (${d.id}): ${d.licenseText}${d.file ? ` (lorkd ${d.file})` : ''}`),
    '',
    'Attribution: cite the data sets\' sources as listed in docs/README.md.',
    '',
  ].join('\n');
}

// configs/metadata.json and configs/inference.json of a MONAI bundle (MONAI Bundle Specification,
// docs.monai.io mb_specification): the required keys (version, monai/pytorch/numpy versions,
// optional_packages_version, task, description, authors, copyright, network_data_format with each
// tensor's type, format, modality, num_channels, spatial_shape, dtype, value_range, is_patch_data,
// channel_def), filled with what produced the bundle. The input is the ONNX file's `input`,
// already preprocessed; the outputs are its `logits` (channel_def: the task's class names) and `cam`.
import type { ExpertMeta } from '../../export/expert-file.js';
import type { BundleSource } from './source.js';
import type { DatasetProvenance } from './provenance.js';

/** The keys the MONAI bundle specification requires in metadata.json, and in each tensor format. */
export const MONAI_REQUIRED_KEYS = ['version', 'monai_version', 'pytorch_version', 'numpy_version', 'optional_packages_version', 'task', 'description', 'authors', 'copyright', 'network_data_format'] as const;
export const MONAI_TENSOR_KEYS = ['type', 'format', 'modality', 'num_channels', 'spatial_shape', 'dtype', 'value_range', 'is_patch_data', 'channel_def'] as const;

export interface BundleVersions {
  lorkd: string;
  libtorch: string;
  onnxruntime: string;
}

/** The range of (x - mean) / std over x in [0, 1] and every channel. */
export function inputRange(meta: Pick<ExpertMeta, 'mean' | 'std'>): [number, number] {
  const ends = meta.mean.flatMap((m, c) => [(0 - m) / meta.std[c]!, (1 - m) / meta.std[c]!]);
  return [Math.min(...ends), Math.max(...ends)];
}

export function bundleMetadata(meta: ExpertMeta, src: BundleSource, data: DatasetProvenance, versions: BundleVersions, cam: [number, number]): Record<string, unknown> {
  const S = meta.inputSize;
  const classes = Object.fromEntries(meta.classNames.map((c, i) => [String(i), c]));
  return {
    version: '1.0.0',
    changelog: { '1.0.0': `exported by lorkd ${versions.lorkd} from ${src.method} run ${src.run}` },
    monai_version: 'none (written by lorkd; MONAI is not needed to run models/model.onnx)',
    pytorch_version: `none (lorkd ${versions.lorkd} on libtorch ${versions.libtorch})`,
    numpy_version: 'none',
    optional_packages_version: { onnxruntime: versions.onnxruntime, lorkd: versions.lorkd },
    task: `${meta.task}: ${meta.classNames.length}-class image classification (${meta.classNames.map((c) => JSON.stringify(c)).join(', ')})`,
    description: `A ${meta.model} network for task "${meta.task}", trained by lorkd's ${src.method} method (Low-Rank Knowledge Decomposition, CVPR 2024) on tasks ${src.tasks.join(', ')}. Input: an RGB image (grey repeated to 3 channels), bilinear resize to ${S}x${S}, pixel / 255, (x - mean) / std with mean ${JSON.stringify(meta.mean)} and std ${JSON.stringify(meta.std)}. Outputs: logits (softmax gives the class probabilities) and the class activation map of the predicted class.`,
    authors: 'lorkd (automatic export); the run\'s owner',
    copyright: 'The run\'s owner; training data under its own licenses (see LICENSE)',
    intended_use: 'Research and evaluation only; not for diagnostic use.',
    data_source: `${data.id}${data.file ? ` (lorkd ${data.file})` : ''}`,
    data_type: 'uint8 images (npz arrays or image files)',
    references: ['Zhou et al., "Low-Rank Knowledge Decomposition for Medical Foundation Models", CVPR 2024'],
    preprocessing: { input_size: S, resize: meta.resize, scale: '1/255', mean: meta.mean, std: meta.std, channels: meta.channels },
    ...(src.metrics ? { eval_metrics: { accuracy: src.metrics.accuracy.mean, auc: src.metrics.auc.mean } } : {}),
    network_data_format: {
      inputs: {
        input: {
          type: 'image', format: 'magnitude', modality: data.modality, num_channels: meta.channels, spatial_shape: [S, S], dtype: 'float32',
          value_range: inputRange(meta), is_patch_data: false, channel_def: { 0: 'R', 1: 'G', 2: 'B' },
        },
      },
      outputs: {
        logits: { type: 'probabilities', format: 'classes', modality: 'n/a', num_channels: meta.classNames.length, spatial_shape: [], dtype: 'float32', value_range: [], is_patch_data: false, channel_def: classes },
        cam: { type: 'image', format: 'magnitude', modality: 'n/a', num_channels: 1, spatial_shape: cam, dtype: 'float32', value_range: [], is_patch_data: false, channel_def: { 0: 'class activation map of the predicted class' } },
      },
    },
  };
}

/** configs/inference.json: MONAI transforms that make the model's input, and the ONNX model to run. */
export function inferenceConfig(meta: ExpertMeta): Record<string, unknown> {
  return {
    imports: ['$import onnxruntime'],
    bundle_root: '.',
    // 1: grey images, repeated to the 3 channels the network takes; set 3 for RGB inputs.
    image_channels: 1,
    model_path: "$@bundle_root + '/models/model.onnx'",
    class_names: meta.classNames,
    preprocessing: {
      _target_: 'Compose',
      transforms: [
        { _target_: 'LoadImaged', keys: 'image', image_only: true },
        { _target_: 'EnsureChannelFirstd', keys: 'image' },
        { _target_: 'RepeatChanneld', keys: 'image', repeats: 3, _disabled_: '$@image_channels == 3' },
        { _target_: 'Resized', keys: 'image', spatial_size: [meta.inputSize, meta.inputSize], mode: 'bilinear', align_corners: false, anti_aliasing: false },
        { _target_: 'ScaleIntensityRanged', keys: 'image', a_min: 0, a_max: 255, b_min: 0, b_max: 1 },
        { _target_: 'NormalizeIntensityd', keys: 'image', subtrahend: meta.mean, divisor: meta.std, channel_wise: true },
      ],
    },
    network: { onnx: '@model_path', input: 'input', outputs: ['logits', 'cam'] },
    postprocessing: { _target_: 'Compose', transforms: [{ _target_: 'Activationsd', keys: 'logits', softmax: true }] },
  };
}

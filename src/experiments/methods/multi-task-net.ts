// The hard-parameter-sharing network of the MTL family (MTL, MTL-KD, MoCo-MTL, Aligned-MTL):
// one shared backbone plus a Linear head per task. State keys are torchvision's for the backbone
// (conv1.0.weight, stage2.0.branch2.0.weight, ...) and heads.<t>.weight / heads.<t>.bias, so
// task t's deployable network is the backbone with head t as its `fc`.
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import { Sequential } from '../../nn/sequential.js';
import { createModel } from '../../models/registry.js';
import type { ImageClassifier } from '../../models/classifier.js';
import { type Tensor, tidy, noGrad } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import { EXPERT_FORMAT, parseExpertMetadata, saveExpertFile } from '../../export/expert-file.js';
import type { DeployedNetwork, MethodContext, TaskBatch } from './method.js';
import { adoptBackbone, featureParameters } from './backbone.js';

export type MultiTaskSpec = Pick<MethodContext, 'tasks' | 'model' | 'inChannels'>;

export class MultiTaskNet extends Module {
  readonly backbone: ImageClassifier;
  readonly spec: MultiTaskSpec;

  constructor(spec: MultiTaskSpec) {
    super();
    if (spec.tasks.length === 0) throw new UserError('a multi-task network needs at least one task');
    for (const t of spec.tasks) if (t.classNames.length < 1) throw new UserError(`task "${t.name}" has no classes`);
    this.spec = { model: spec.model, inChannels: spec.inChannels, tasks: spec.tasks.map((t) => ({ ...t, classNames: t.classNames.slice() })) };
    this.backbone = adoptBackbone(this, spec.model, spec.inChannels);
    this.registerModule('heads', new Sequential(...spec.tasks.map((t) => new Linear(this.backbone.numFeatures, t.classNames.length))));
  }

  get numTasks(): number {
    return this.spec.tasks.length;
  }
  get numFeatures(): number {
    return this.backbone.numFeatures;
  }
  head(t: number): Linear {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTasks) throw new UserError(`task ${t} out of range [0, ${this.numTasks})`);
    return this.getModule<Sequential>('heads').getModule<Linear>(String(t));
  }

  /** Pooled backbone features (B, numFeatures). */
  override forward(images: Tensor): Tensor {
    return this.backbone.forwardFeatures(images);
  }

  /** Per-task logits of each task's contiguous row slice of already computed features (null where absent). */
  headLogits(features: Tensor, routing: TaskBatch['routing']): (Tensor | null)[] {
    if (routing.numTasks !== this.numTasks) throw new UserError(`batch routing has ${routing.numTasks} tasks, the network ${this.numTasks}`);
    return routing.counts.map((c, t) => (c === 0 ? null : this.head(t).forward(features.narrow(0, routing.offsets[t]!, c))));
  }

  /** Per-task logits of a task batch (in the current mode, with grad unless the caller disables it). */
  logits(batch: TaskBatch): (Tensor | null)[] {
    return tidy(() => this.headLogits(this.forward(batch.images), batch.routing));
  }

  /** Parameters of the shared backbone (everything but the heads), in a fixed order. */
  sharedParameters(): Tensor[] {
    return featureParameters(this.backbone);
  }
  /** Parameters of task t's head. */
  taskParameters(t: number): Tensor[] {
    return this.head(t).parameters();
  }

  /**
   * Task t's network as a plain torchvision-layout classifier (the backbone with head t as `fc`),
   * a copy in this network's dtype, in eval mode; the caller disposes it.
   */
  deploy(t: number): ImageClassifier {
    const head = this.head(t);
    const model = createModel(this.spec.model, { numClasses: head.outFeatures, inChannels: this.spec.inChannels });
    const dtype = this.parameters()[0]!.dtype;
    if (dtype !== 'float32') model.toDtype(dtype);
    tidy(() => {
      // The backbone's own walk gives exactly the plain model's keys (its children are ours),
      // whatever else a method registers on this network (e.g. MoCo's state).
      const mine = new Map<string, Tensor>();
      for (const [k, v] of this.backbone.stateDict()) if (!k.startsWith('fc.')) mine.set(k, v);
      for (const [k, v] of head.stateDict('fc')) mine.set(k, v);
      noGrad(() => model.loadStateDict(mine, { strict: true }));
    });
    return model.eval();
  }

  /** Frees every parameter and buffer, including the backbone's unused placeholder `fc`. */
  override dispose(): void {
    super.dispose();
    this.backbone.fc.dispose();
  }
}

/**
 * A plain classifier as a DeployedNetwork. `save(file, meta)` writes an expert file (see
 * export/expert-file.ts): `meta` holds the expert metadata strings (input_size, mean, std, ...);
 * lorkd_format, model, task, class_names, channels and resize default to what is known here.
 */
export function classifierDeployment(model: ImageClassifier, modelName: string, task: MultiTaskSpec['tasks'][number], channels: number): DeployedNetwork {
  return {
    module: model,
    forward: (images) => noGrad(() => model.forward(images)),
    save(file, meta) {
      const md: Record<string, string> = {
        model: modelName, task: task.name, class_names: JSON.stringify(task.classNames), channels: String(channels), resize: 'bilinear', ...meta, lorkd_format: EXPERT_FORMAT,
      };
      saveExpertFile(file, model, parseExpertMetadata(md, file));
    },
    dispose: () => model.dispose(),
  };
}

// What a method is, declared by the method itself (docs/ARCHITECTURE.md "Methods"): callers ask
// its spec (does it distil, which teacher outputs, how its FLOPs are counted, its label, the options
// it takes) instead of checking its name. Adding a method is one file exporting a spec and one
// line in the registry (methods/index.ts).
import type { Method, MethodContext, MethodName, ParamCounts } from './method.js';
import type { TaskSuite } from '../../data/index.js';
import type { MemoryEstimate } from '../resources.js';

/** Options beyond the shared budget (epochs, lr, data, ...) that some methods take. */
export type MethodOption = 'kd' | 'alpha' | 'beta' | 'rank' | 'loraAlpha' | 'strategy';

/** The settings that decide whether and how a method distils. */
export interface KdSettings {
  kd: 'feature' | 'logits' | 'none';
  beta: number;
}

/** The teacher outputs a run distils from: pooled features, unified logits (these need the teacher's classes to be the suite's). */
export type TeacherOutput = 'features' | 'logits';

export interface MethodSpec {
  readonly name: MethodName;
  /** The paper's name, for tables and charts. */
  readonly label: string;
  /** Which architecture option builds its networks: the foundation's (resnet18 by default) or the shared backbone (shufflenet_v2_x1_0). */
  readonly arch: 'foundation' | 'backbone';
  /** The teacher outputs a run with these settings distils from (empty: no teacher). */
  teacher(o: KdSettings): readonly TeacherOutput[];
  /** Whether the teacher is part of the method (a KD method cannot run without one) or optional (LoRKD with --kd none). */
  readonly teacherRequired: boolean;
  /**
   * How its FLOPs per image are counted: 'lorkd' (the experts' low-rank paths in training, the fused
   * backbone deployed), 'backbone' (the plain backbone in training and deployment), 'other' (networks
   * that are not the backbone: the foundation, KF's pairs; counted from their own networks or left out).
   */
  readonly flops: 'lorkd' | 'backbone' | 'other';
  /** 'single': one backward per step (DDP overlap, fp16 loss scaling); 'per-task': several, then rewrites the shared gradients. */
  readonly backward: 'single' | 'per-task';
  /** Has a rank, swept by `compare --ranks` (Table 3). */
  readonly ranked: boolean;
  /** Trains on a decomposition given with --decomposition (grow); not one of a comparison's methods. */
  readonly needsDecomposition?: boolean;
  /** The options it takes beyond the shared budget (`lorkd run` refuses the others). */
  readonly options: readonly MethodOption[];
  create(ctx: MethodContext): Method;
  /** The memory a training run needs, estimated before it starts (absent: not estimated). */
  memory?(o: { suite: TaskSuite; model: string; batch: number; input: number; rank: number }): MemoryEstimate;
  /** Parameter counts without building every network (KF's are many); default: build, count, dispose. */
  countParams?(o: { tasks: number; model: string }): ParamCounts;
}

/** Feature or logit KD, as --kd says (none: no teacher unless the method requires one, then features). */
export function kdOutputs(o: KdSettings, required: boolean): TeacherOutput[] {
  if (!required && (o.kd === 'none' || o.beta === 0)) return [];
  return [o.kd === 'logits' ? 'logits' : 'features'];
}

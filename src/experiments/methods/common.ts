// Pieces every method object is made of: a checkpointable container of its networks, eval-mode
// logits without grad, and the parameter count of a plain backbone.
import { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/index.js';
import { noGrad } from '../../tensor/index.js';
import { createModel } from '../../models/registry.js';
import { UserError } from '../../tensor/errors.js';
import type { MethodContext } from './method.js';
import type { KdContext } from './kd.js';

/** Named children, checkpointed together (state keys `<name>.<key>`). */
export class Bundle extends Module {
  constructor(children: Record<string, Module | null>) {
    super();
    for (const [name, m] of Object.entries(children)) if (m) this.registerModule(name, m);
  }
  forward(): Tensor {
    throw new Error('a method bundle is a container, not a network');
  }
  /** Each child disposes itself (some own tensors outside their state, e.g. a placeholder fc). */
  override dispose(): void {
    for (const [, c] of this.namedChildren()) c.dispose();
  }
}

/** fn() with `m` in eval mode and no grad; m's mode is restored. */
export function evalNoGrad<T>(m: Module, fn: () => T): T {
  const was = m.training;
  m.eval();
  try {
    return noGrad(fn);
  } finally {
    m.train(was);
  }
}

/** Parameters of `model` (a registry name) without its classifier head: one deployed backbone. */
export function backboneParams(model: string, inChannels: number): number {
  const m = createModel(model, { numClasses: 1, inChannels });
  try {
    return m.namedParameters().filter(([n]) => !n.startsWith('fc.')).reduce((s, [, p]) => s + p.numel, 0);
  } finally {
    m.dispose();
  }
}

/** The teacher a KD method requires (a one-line error without one). */
export function requireKd(name: string, ctx: MethodContext): KdContext {
  if (!ctx.kd) throw new UserError(`method ${name} distils from the foundation: give it a foundation model (or use --kd feature|logits)`);
  return ctx.kd;
}

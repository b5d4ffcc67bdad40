// A served model's twin in the forward worker (forward-host.ts): the same architecture, built in
// the worker from a recipe, whose parameters and buffers are the served model's own storage,
// handed over without a copy (tensor/handoff.ts). The twin never changes the weights; a model
// that changes (a task joined, serve/join.ts) gets a new twin.
import { type Tensor, handOff, takeHandedOff, dropHandedOff, emptyCache } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { Module } from '../nn/module.js';
import { DecompositionModel } from '../lorkd/decomposition.js';
import { ImageClassifier } from '../models/classifier.js';
import { createModel, modelRecipe } from '../models/registry.js';
import type { ModelOptions } from '../models/classifier.js';

/** How to build a model's twin (structured-cloneable). */
export type Recipe = { kind: 'decomposition'; config: DecompositionModel['config'] } | { kind: 'classifier'; name: string; options: ModelOptions };

/** A twin's recipe and its tensors, by name, as hand-off numbers. */
export interface MirrorMessage {
  recipe: Recipe;
  state: [string, number][];
}

/** Every parameter and buffer, by name (the persistent ones and the others). */
const tensorsOf = (m: Module): [string, Tensor][] => [...m.namedParameters(), ...m.namedBuffers()];

function recipeOf(model: Module): Recipe {
  if (model instanceof DecompositionModel) return { kind: 'decomposition', config: structuredClone(model.config) };
  const r = model instanceof ImageClassifier ? modelRecipe(model) : undefined;
  if (!r) throw new UserError(`serve: a ${model.constructor.name} not built by createModel cannot be served off the event loop`);
  return { kind: 'classifier', ...r };
}

/** What the worker needs to build `model`'s twin; its tensors are parked until the worker takes them. */
export function mirrorOf(model: Module): MirrorMessage {
  const recipe = recipeOf(model);
  const state: [string, number][] = [];
  try {
    for (const [k, t] of tensorsOf(model)) state.push([k, handOff(t)]);
  } catch (e) {
    dropState(state);
    throw e;
  }
  return { recipe, state };
}

/** Frees the parked tensors of a mirror message that will not be built. */
export function dropState(state: [string, number][]): void {
  for (const [, id] of state) dropHandedOff(id);
}

/** In the worker: the twin, in eval mode, over the handed-off tensors (all taken, built or not). */
export function buildMirror(m: MirrorMessage): Module {
  let model: Module | null = null;
  try {
    model = m.recipe.kind === 'decomposition' ? new DecompositionModel({ ...m.recipe.config, strategy: 'fused' }) : createModel(m.recipe.name, m.recipe.options);
    const mine = new Map(tensorsOf(model));
    if (mine.size !== m.state.length) throw new Error(`serve: the worker's ${m.recipe.kind} has ${mine.size} tensors, the served model ${m.state.length}`);
    for (const [k, id] of m.state) {
      const dst = mine.get(k);
      if (!dst) throw new Error(`serve: the worker's ${m.recipe.kind} has no tensor "${k}"`);
      const src = takeHandedOff(id);
      dst.setData_(src);
      src.dispose();
    }
    model.eval();
    emptyCache(); // the twin's own initial weights, just replaced
    return model;
  } catch (e) {
    dropState(m.state);
    model?.dispose();
    throw e;
  }
}

// The method registry (docs/ARCHITECTURE.md, "Methods"): every method of the paper's Table 1 is one
// spec (methods/spec.ts) exported by its own file and listed here, in Table 1's order. The trainer,
// the evaluation, `lorkd run`, `lorkd compare` and the report ask the spec, never the name.
import { UserError } from '../../tensor/errors.js';
import type { Method, MethodContext, MethodName } from './method.js';
import type { MethodSpec } from './spec.js';
import { FOUNDATION } from './foundation.js';
import { STL, STL_KD } from './stl.js';
import { MTL, MTL_KD } from './mtl.js';
import { LORKD } from './lorkd.js';
import { MOCO_MTL } from './moco-mtl.js';
import { ALIGNED_MTL } from './aligned-mtl.js';
import { KF } from './kf.js';
import { GROW } from './grow.js';

const SPECS: readonly MethodSpec[] = [FOUNDATION, STL, MTL, STL_KD, MTL_KD, MOCO_MTL, ALIGNED_MTL, KF, LORKD, GROW];

/** The method whose run is a comparison's teacher (trained first for every seed whose runs distil). */
export const TEACHER_METHOD: MethodName = FOUNDATION.name;
/** The method the others are compared against (paired differences, Table 1's last column). */
export const REFERENCE_METHOD: MethodName = LORKD.name;

/** The spec of a registered method, or null (results written by other tools may name others). */
export function findMethodSpec(name: string): MethodSpec | null {
  return SPECS.find((m) => m.name === name) ?? null;
}

/** The registered methods, in Table 1's order. */
export function availableMethods(): MethodName[] {
  return SPECS.map((s) => s.name);
}

/** The methods `compare --methods all` runs: every registered one but those that grow a given decomposition. */
export function comparableMethods(): MethodName[] {
  return SPECS.filter((s) => !s.needsDecomposition).map((s) => s.name);
}

/** The spec of a method (one-line error listing the known ones). */
export function methodSpec(name: string): MethodSpec {
  const s = findMethodSpec(name);
  if (!s) throw new UserError(`unknown method "${name}"; methods: ${availableMethods().join(', ')}`);
  return s;
}

/** Checks a method name (one-line error listing the known ones). */
export function methodName(name: string): MethodName {
  return methodSpec(name).name;
}

export function createMethod(name: string, ctx: MethodContext): Method {
  return methodSpec(name).create(ctx);
}

export { METHOD_NAMES, PLAIN_STEP, type Method, type MethodContext, type MethodName, type TrainStep } from './method.js';
export { kdOutputs, type MethodSpec, type MethodOption, type TeacherOutput, type KdSettings } from './spec.js';

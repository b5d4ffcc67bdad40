// The method registry (docs/ARCHITECTURE.md, "Methods"): name -> factory(ctx). Every method of the
// paper's Table 1 is one Method object built here; the trainer, the evaluation and `lorkd compare`
// know nothing else about them.
import { UserError } from '../../tensor/errors.js';
import { METHOD_NAMES, type Method, type MethodContext, type MethodName } from './method.js';
import { createFoundation } from './foundation.js';
import { createStl, createStlKd } from './stl.js';
import { createMtl, createMtlKd } from './mtl.js';
import { createLorkd } from './lorkd.js';
import { createMocoMtl } from './moco-mtl.js';
import { createAlignedMtl } from './aligned-mtl.js';
import { createKf } from './kf.js';

export type MethodFactory = (ctx: MethodContext) => Method;

const FACTORIES: Partial<Record<MethodName, MethodFactory>> = {
  foundation: createFoundation,
  stl: (ctx) => createStl(ctx),
  mtl: (ctx) => createMtl(ctx),
  'stl-kd': createStlKd,
  'mtl-kd': createMtlKd,
  'moco-mtl': (ctx) => createMocoMtl(ctx),
  'aligned-mtl': createAlignedMtl,
  kf: (ctx) => createKf(ctx),
  lorkd: createLorkd,
};

/** Methods that distil from the foundation and cannot be built without it. */
export const KD_METHODS: readonly MethodName[] = ['stl-kd', 'mtl-kd', 'kf'];

/** The registered methods, in Table 1's order. */
export function availableMethods(): MethodName[] {
  return METHOD_NAMES.filter((n) => FACTORIES[n] !== undefined);
}

/** Checks a method name (one-line error listing the known ones). */
export function methodName(name: string): MethodName {
  if (!(availableMethods() as string[]).includes(name)) throw new UserError(`unknown method "${name}"; methods: ${availableMethods().join(', ')}`);
  return name as MethodName;
}

export function createMethod(name: string, ctx: MethodContext): Method {
  return FACTORIES[methodName(name)]!(ctx);
}

export { METHOD_NAMES, type Method, type MethodContext, type MethodName } from './method.js';

// Memory scopes, in the spirit of TF.js tidy and TorchSharp's DisposeScope: every tensor created
// inside a scope belongs to it and is freed when the scope ends, except what the scope returns
// (or what is passed to keep()).
import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

/** Registers a fresh tensor with the innermost scope (if any). */
export function track(t: Tensor): Tensor {
  const top = stack[stack.length - 1];
  if (top) top.add(t);
  return t;
}

/** Removes t from the scope that owns it (e.g. when it is disposed by hand). */
export function untrack(t: Tensor): void {
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.delete(t)) return;
}

/** Takes t out of every scope: the caller now owns it (dispose() or GC frees it). */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

function collect(v: unknown, out: Set<Tensor>, seen: Set<unknown>, TensorClass: Function): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (v instanceof TensorClass) {
    out.add(v as Tensor);
    return;
  }
  if (Array.isArray(v)) for (const e of v) collect(e, out, seen, TensorClass);
  else if (v instanceof Map) for (const e of v.values()) collect(e, out, seen, TensorClass);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const e of Object.values(v)) collect(e, out, seen, TensorClass);
}

let tensorClass: Function = Object;
export function registerTensorClass(c: Function): void {
  tensorClass = c;
}

/**
 * Runs fn in a new scope. Tensors created inside are disposed at the end, except those reachable
 * from the return value (tensors, arrays, Maps and plain objects of them), which move to the
 * enclosing scope. fn must be synchronous.
 */
export function tidy<R>(fn: () => R): R {
  const scope = new Set<Tensor>();
  stack.push(scope);
  let result: R;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy(fn): fn must be synchronous');
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  const escaped = new Set<Tensor>();
  collect(result, escaped, new Set(), tensorClass);
  for (const t of scope) {
    if (escaped.has(t)) track(t);
    else t.dispose();
  }
  return result;
}

/** Number of open scopes (for tests). */
export function scopeDepth(): number {
  return stack.length;
}

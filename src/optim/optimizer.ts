// Optimizer: the base of SGD and AdamW, after torch.optim.Optimizer. Parameters come in groups,
// each with its own hyper-parameters (schedulers change `lr` per group); per-parameter state
// (momentum buffers, moment estimates, step counts) is created lazily on the first step and
// saved/restored through stateDict()/loadStateDict() for resumable training.
import type { NativeHandle } from '../tensor/native.js';
import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { noGrad, tensor, zerosLike } from '../tensor/creation.js';
import { UserError } from '../tensor/errors.js';

/** A hyper-parameter value: what fits in a checkpoint's metadata JSON. */
export type HyperValue = number | boolean | number[];

/** Hyper-parameters every optimizer has. */
export interface OptimizerOptions {
  /** Learning rate. */
  lr: number;
}

/** A parameter group as the caller passes it: parameters plus overrides of the defaults. */
export type ParamGroupSpec<O> = Partial<O> & { params: Tensor[] };

/** A parameter group as the optimizer holds it: every hyper-parameter resolved. */
export type ParamGroup<O> = O & { params: Tensor[] };

/** Per-parameter state: tensors (buffers) and scalars (step counts); undefined entries are absent. */
export type ParamState = Record<string, Tensor | number | undefined>;

/** One group of a saved optimizer state: its hyper-parameters and the indices of its parameters. */
export type GroupState = Record<string, HyperValue> & { params: number[] };

/**
 * An optimizer's state, ready for a checkpoint: `groups` is JSON (put it in the safetensors
 * metadata), `tensors` maps `state.<paramIndex>.<name>` (e.g. `state.3.momentum_buffer`,
 * `state.3.exp_avg`, `state.3.step`) to tensors. Parameter indices count through the groups in
 * order, as in PyTorch. Scalars such as `step` are saved as 0-dim float32 tensors (as PyTorch).
 */
export interface OptimizerStateDict {
  groups: GroupState[];
  tensors: Map<string, Tensor>;
}

/** The native handles of tensors (the multi-tensor steps take whole lists in one call). */
export const handles = (ts: Tensor[]): NativeHandle[] => ts.map((t) => t.handle);

/**
 * The defaults of an optimizer: `base` overridden by the caller's `options`; an option that
 * `base` does not name is refused (a UserError naming the known ones), which catches typos
 * such as `weight_decay` for `weightDecay`.
 */
export function withDefaults<O extends object>(cls: string, base: O, options: object): O {
  for (const key of Object.keys(options)) {
    if (!(key in base)) throw new UserError(`${cls}: unknown option "${key}" (known: ${Object.keys(base).join(', ')})`);
  }
  return { ...base, ...options };
}

const STATE_KEY = /^state\.(\d+)\.([A-Za-z_][A-Za-z0-9_]*)$/;
const sameShape = (a: number[], b: number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

function sameKind(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && b.every((x) => typeof x === 'number');
  return typeof a === typeof b;
}

export abstract class Optimizer<O extends OptimizerOptions, S extends ParamState = ParamState> {
  /** The parameter groups; schedulers and callers may change hyper-parameters (e.g. `lr`) between steps. */
  readonly paramGroups: ParamGroup<O>[] = [];
  /** The defaults each group's missing hyper-parameters come from. */
  readonly defaults: Readonly<O>;
  /** Per-parameter state, created on a parameter's first step. The optimizer owns its tensors. */
  protected readonly state = new Map<Tensor, S>();
  /** Names of per-parameter state entries that are numbers (saved as 0-dim tensors). */
  protected abstract readonly scalarStateKeys: readonly string[];
  /** Names of per-parameter state entries that are tensors shaped like the parameter. */
  protected abstract readonly tensorStateKeys: readonly string[];
  readonly #seen = new Set<Tensor>();
  /** Scratch tensors shaped like each parameter, reused every step (not part of the state). */
  readonly #workspace = new Map<Tensor, Tensor>();

  /**
   * @param params a list of parameters (one group) or a list of groups, each with its own
   *   overrides of `defaults`.
   * @param defaults hyper-parameters for groups that do not set them.
   */
  constructor(params: Tensor[] | ParamGroupSpec<O>[], defaults: O) {
    this.defaults = Object.freeze({ ...defaults });
    if (!Array.isArray(params) || params.length === 0) throw new UserError(`${this.constructor.name}: got an empty parameter list`);
    const groups: ParamGroupSpec<O>[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] } as ParamGroupSpec<O>] : (params as ParamGroupSpec<O>[]);
    for (const g of groups) this.addParamGroup(g);
  }

  /** Checks a resolved group's hyper-parameters (throws UserError); called for every group added. */
  protected abstract validateGroup(g: ParamGroup<O>): void;

  /** Adds a parameter group (e.g. newly trainable layers); missing hyper-parameters come from the defaults. */
  addParamGroup(spec: ParamGroupSpec<O>): void {
    const cls = this.constructor.name;
    if (spec === null || typeof spec !== 'object' || !Array.isArray(spec.params)) {
      throw new UserError(`${cls}: a parameter group must be an object with a params array`);
    }
    if (spec.params.length === 0) throw new UserError(`${cls}: parameter group ${this.paramGroups.length} has no parameters`);
    for (const key of Object.keys(spec)) {
      if (key !== 'params' && !(key in this.defaults)) {
        throw new UserError(`${cls}: unknown option "${key}" (known: ${Object.keys(this.defaults).join(', ')})`);
      }
    }
    const seenHere = new Set<Tensor>();
    for (const p of spec.params) {
      if (!(p instanceof Tensor)) throw new UserError(`${cls}: parameters must be Tensors`);
      if (!p.isLeaf) throw new UserError(`${cls}: can't optimize a non-leaf tensor (${p})`);
      if (this.#seen.has(p) || seenHere.has(p)) throw new UserError(`${cls}: a parameter appears in more than one group (${p})`);
      seenHere.add(p);
    }
    const group = { ...this.defaults, ...spec, params: spec.params.slice() } as ParamGroup<O>;
    this.validateGroup(group);
    for (const p of seenHere) this.#seen.add(p);
    this.paramGroups.push(group);
  }

  /** Updates every parameter that has a gradient, once. */
  abstract step(): void;

  /**
   * Clears the gradients: sets them to null (default, as PyTorch >= 2.0) or zeroes them in place
   * (`setToNone = false`, keeping the gradient storage).
   */
  zeroGrad(setToNone = true): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          if (setToNone) {
            p.grad = null;
            continue;
          }
          const grad = p.grad;
          if (grad === null) continue;
          grad.zero_();
          grad.dispose();
        }
      }
    });
  }

  /** Every parameter in group order (the order that `state.<index>` refers to). */
  protected allParams(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /**
   * The optimizer's state for a checkpoint. The tensors are fresh copies that belong to the
   * caller (they join the current tidy scope, like any op result).
   */
  stateDict(): OptimizerStateDict {
    const tensors = new Map<string, Tensor>();
    let index = 0;
    const groups = this.paramGroups.map((g) => {
      const out: Record<string, HyperValue> = {};
      for (const [k, v] of Object.entries(g)) {
        if (k !== 'params') out[k] = Array.isArray(v) ? (v as number[]).slice() : (v as HyperValue);
      }
      const ids: number[] = [];
      for (const p of g.params) {
        const s = this.state.get(p);
        if (s !== undefined) {
          for (const [name, v] of Object.entries(s)) {
            if (v === undefined) continue;
            tensors.set(`state.${index}.${name}`, typeof v === 'number' ? tensor([v], [], { dtype: 'float32' }) : noGrad(() => v.clone()));
          }
        }
        ids.push(index++);
      }
      return { ...out, params: ids } as GroupState;
    });
    return { groups, tensors };
  }

  /**
   * Restores a state saved by stateDict() into an optimizer built over the same parameters (same
   * groups, same order, same shapes). Hyper-parameters are taken from the saved groups; the
   * tensors are copied (the caller keeps ownership of `state.tensors`). Every problem is
   * reported in one UserError, and nothing changes unless all is well.
   */
  loadStateDict(saved: OptimizerStateDict): void {
    const cls = this.constructor.name;
    const problems: string[] = [];
    if (saved === null || typeof saved !== 'object' || !Array.isArray(saved.groups) || !(saved.tensors instanceof Map)) {
      throw new UserError(`${cls}.loadStateDict: expected { groups: [...], tensors: Map }`);
    }
    if (saved.groups.length !== this.paramGroups.length) {
      throw new UserError(`${cls}.loadStateDict: the state has ${saved.groups.length} parameter groups, the optimizer ${this.paramGroups.length}`);
    }
    const params = this.allParams();
    const hyper: Partial<O>[] = [];
    let index = 0;
    saved.groups.forEach((sg, gi) => {
      const g = this.paramGroups[gi]!;
      if (!Array.isArray(sg.params) || sg.params.length !== g.params.length) {
        problems.push(`group ${gi} has ${Array.isArray(sg.params) ? sg.params.length : 'no'} parameters in the state, ${g.params.length} in the optimizer`);
      } else if (!sg.params.every((id, k) => id === index + k)) {
        problems.push(`group ${gi}: parameter indices are not ${index}..${index + g.params.length - 1}`);
      }
      index += g.params.length;
      const h: Record<string, HyperValue> = {};
      for (const [k, v] of Object.entries(sg)) {
        if (k === 'params') continue;
        if (!(k in this.defaults)) problems.push(`group ${gi}: unknown hyper-parameter "${k}"`);
        else if (!sameKind((this.defaults as Record<string, unknown>)[k], v)) problems.push(`group ${gi}: "${k}" has the wrong type`);
        else h[k] = Array.isArray(v) ? v.slice() : v;
      }
      hyper.push(h as Partial<O>);
    });

    const entries = new Map<number, Map<string, Tensor>>();
    for (const [key, t] of saved.tensors) {
      const m = STATE_KEY.exec(key);
      const id = m ? Number(m[1]) : -1;
      const name = m ? m[2]! : '';
      if (!m || id >= params.length) {
        problems.push(`unexpected key ${key}`);
        continue;
      }
      const p = params[id]!;
      if (this.scalarStateKeys.includes(name)) {
        if (t.numel !== 1) problems.push(`${key}: expected one value, got shape [${t.shape.join(', ')}]`);
      } else if (this.tensorStateKeys.includes(name)) {
        if (!sameShape(t.shape, p.shape)) problems.push(`${key}: state [${t.shape.join(', ')}] vs parameter [${p.shape.join(', ')}]`);
      } else {
        problems.push(`unexpected key ${key}`);
        continue;
      }
      if (!entries.has(id)) entries.set(id, new Map());
      entries.get(id)!.set(name, t);
    }
    if (problems.length === 0) {
      const merged = this.paramGroups.map((g, gi) => ({ ...g, ...hyper[gi] }) as ParamGroup<O>);
      merged.forEach((g, gi) => {
        try {
          this.validateGroup(g);
        } catch (e) {
          problems.push(`group ${gi}: ${(e as Error).message}`);
        }
      });
      for (const [id, e] of entries) {
        const gi = this.#groupIndexOf(id);
        const missing = this.requiredStateKeys(merged[gi]!).filter((k) => !e.has(k));
        if (missing.length) problems.push(`state.${id}: missing ${missing.join(', ')}`);
      }
    }
    if (problems.length) throw new UserError(`${cls}.loadStateDict: ${problems.join('; ')}`);

    // All checked: commit.
    this.paramGroups.forEach((g, gi) => Object.assign(g, hyper[gi]));
    this.disposeState();
    for (const [id, e] of entries) {
      const p = params[id]!;
      const s: ParamState = {};
      for (const [name, t] of e) {
        s[name] = this.scalarStateKeys.includes(name) ? t.item() : this.#copyLike(t, p);
      }
      this.state.set(p, s as S);
    }
  }

  /** The state entries a parameter of this group must have once it has any state. */
  protected abstract requiredStateKeys(g: ParamGroup<O>): string[];

  /** Frees the optimizer's state and scratch memory (not the parameters). The optimizer starts afresh afterwards. */
  dispose(): void {
    this.disposeState();
    for (const w of this.#workspace.values()) w.dispose();
    this.#workspace.clear();
  }

  /**
   * A scratch tensor like p, owned by the optimizer and reused across steps: per-step
   * temporaries live here instead of in fresh allocations (allocating and freeing ~170
   * parameter-sized tensors per step costs more than the arithmetic).
   */
  protected workspace(p: Tensor): Tensor {
    let w = this.#workspace.get(p);
    if (w === undefined) {
      w = keep(zerosLike(p));
      this.#workspace.set(p, w);
    }
    return w;
  }

  protected disposeState(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    this.state.clear();
  }

  #groupIndexOf(id: number): number {
    let n = 0;
    for (let gi = 0; gi < this.paramGroups.length; gi++) {
      n += this.paramGroups[gi]!.params.length;
      if (id < n) return gi;
    }
    return this.paramGroups.length - 1;
  }

  /** A kept copy of t with p's dtype and device. */
  #copyLike(t: Tensor, p: Tensor): Tensor {
    return noGrad(() => {
      let c = t.dtype === p.dtype ? t.clone() : t.to(p.dtype);
      if (c.device !== p.device) {
        const d = c.to(p.device);
        c.dispose();
        c = d;
      }
      return keep(c);
    });
  }
}

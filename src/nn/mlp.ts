// The transformer's MLP block, as torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout
// (indices 0..4, so its state dict reads `mlp.0.weight`, `mlp.3.weight`).
import { UserError } from '../tensor/errors.js';
import { Sequential } from './sequential.js';
import { Linear } from './linear.js';
import { GELU } from './gelu.js';
import { Dropout } from './basic.js';
import { normal, xavierUniform } from './init.js';

/** dim -> hidden -> dim with an exact GELU between; linear weights xavier-uniform, biases N(0, 1e-6) as torchvision. */
export class MLPBlock extends Sequential {
  constructor(
    readonly dim: number,
    readonly hidden: number,
    dropout = 0,
  ) {
    if (!(Number.isInteger(dim) && dim > 0 && Number.isInteger(hidden) && hidden > 0)) throw new UserError(`MLPBlock: dims must be positive integers, got ${dim} -> ${hidden}`);
    super(new Linear(dim, hidden), new GELU(), new Dropout(dropout), new Linear(hidden, dim), new Dropout(dropout));
    for (const m of this.modules()) {
      if (!(m instanceof Linear)) continue;
      xavierUniform(m.weight);
      normal(m.bias!, 0, 1e-6);
    }
  }
}

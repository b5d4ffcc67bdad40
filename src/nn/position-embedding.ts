// Learned position embeddings over a square grid of patches, with a leading class-token row:
// their resizing to another grid: bicubic interpolation with align_corners, as torchvision's
// `interpolate_embeddings` (vision_transformer.py), so a ViT trained at 224 px runs at 64 px.
import type { Tensor } from '../tensor/tensor.js';
import { cat, interpolate } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { UserError } from '../tensor/errors.js';

/**
 * pos [1, 1 + g*g, D] (class-token row first) resized to [1, 1 + side*side, D]: the grid rows are
 * laid out as a [1, D, g, g] image, interpolated bicubically (align_corners = true) to side x side,
 * and the class-token row is kept. Returns `pos` itself when the grid already has that side.
 */
export function resizePositionEmbedding(pos: Tensor, side: number): Tensor {
  const [one, len, dim] = pos.shape as [number, number, number];
  const g = Math.round(Math.sqrt(len - 1));
  if (pos.ndim !== 3 || one !== 1 || g * g !== len - 1) throw new UserError(`position embedding must be [1, 1 + g*g, D], got [${pos.shape.join(', ')}]`);
  if (!(Number.isInteger(side) && side > 0)) throw new UserError(`position embedding: grid side must be a positive integer, got ${side}`);
  if (side === g) return pos;
  return tidy(() => {
    const grid = pos.narrow(1, 1, g * g).permute([0, 2, 1]).reshape([1, dim, g, g]);
    const resized = interpolate(grid, [side, side], 'bicubic', true).reshape([1, dim, side * side]).permute([0, 2, 1]);
    return cat([pos.narrow(1, 0, 1), resized], 1);
  });
}

// The class token of a vision transformer (Dosovitskiy et al., 2021): one learned [1, 1, D] row put
// before the patch tokens; after the encoder its row is the image's pooled feature.
import type { Tensor } from '../tensor/tensor.js';
import { cat } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { UserError } from '../tensor/errors.js';

/** tokens [N, L, D] with the class token [1, 1, D] put first: [N, 1 + L, D]. */
export function prependClassToken(tokens: Tensor, classToken: Tensor): Tensor {
  if (classToken.ndim !== 3 || classToken.size(0) !== 1 || classToken.size(1) !== 1 || classToken.size(2) !== tokens.size(2)) {
    throw new UserError(`class token must be [1, 1, ${tokens.size(2)}], got [${classToken.shape.join(', ')}]`);
  }
  return tidy(() => cat([classToken.expand([tokens.size(0), 1, tokens.size(2)]), tokens], 1));
}

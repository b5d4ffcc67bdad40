// Vision Transformer (Dosovitskiy et al., 2021) with torchvision's structure and names
// (torchvision.models.vision_transformer): conv_proj, class_token, encoder.pos_embedding,
// encoder.layers.encoder_layer_{i}.{ln_1, self_attention, ln_2, mlp}, encoder.ln. The head is
// `fc`, as in every lorkd backbone (torchvision's `heads.head`: renamed by fromTorchvision).
// The position embedding is resized to the input's patch grid (bicubic, as torchvision's
// interpolate_embeddings), so one model runs at any input side that is a multiple of the patch.
import type { Tensor } from '../tensor/tensor.js';
import { zeros, empty } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { UserError } from '../tensor/errors.js';
import { Module, type StateDict } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Dropout } from '../nn/basic.js';
import { MLPBlock } from '../nn/mlp.js';
import { MultiheadAttention } from '../nn/attention.js';
import { resizePositionEmbedding } from '../nn/position-embedding.js';
import { prependClassToken } from '../nn/class-token.js';
import { normal, zeros as fillZeros } from '../nn/init.js';
import { ImageClassifier, type ModelOptions } from './classifier.js';

/** torchvision's ViT norm layer: LayerNorm with eps 1e-6. */
const norm = (dim: number): LayerNorm => new LayerNorm(dim, { eps: 1e-6 });

/** Pre-norm transformer block: x + attention(ln_1(x)), then y + mlp(ln_2(y)). */
export class EncoderBlock extends Module {
  constructor(dim: number, heads: number, mlpDim: number, dropout = 0, attentionDropout = 0) {
    super();
    this.registerModule('ln_1', norm(dim));
    this.registerModule('self_attention', new MultiheadAttention(dim, heads, attentionDropout));
    this.registerModule('dropout', new Dropout(dropout));
    this.registerModule('ln_2', norm(dim));
    this.registerModule('mlp', new MLPBlock(dim, mlpDim, dropout));
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => {
      const run = (name: string, t: Tensor) => this.getModule(name).forward(t);
      const y = run('dropout', run('self_attention', run('ln_1', x))).add(x);
      return run('mlp', run('ln_2', y)).add(y);
    });
  }
}

/** The configuration of a ViT: patch side, width, depth, heads, MLP width. */
export interface ViTConfig {
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpDim: number;
  /** The input side the position embedding is made for (torchvision's image_size). */
  imageSize: number;
}

export const VIT_CONFIGS = {
  vit_b_16: { patch: 16, dim: 768, depth: 12, heads: 12, mlpDim: 3072, imageSize: 224 },
  vit_tiny_p8: { patch: 8, dim: 192, depth: 12, heads: 3, mlpDim: 768, imageSize: 64 },
} as const satisfies Record<string, ViTConfig>;
export type ViTVariant = keyof typeof VIT_CONFIGS;

/**
 * Patch embedding (a patch x patch conv of stride patch), the class token, learned position
 * embeddings, `depth` encoder blocks, a final LayerNorm; the pooled feature is the class token's
 * row after that LayerNorm (numFeatures = dim), then the linear head `fc`. Initialised as
 * torchvision: conv_proj normal (std sqrt(1 / fan_in)), position embedding N(0, 0.02^2),
 * class token and head zero.
 */
export class VisionTransformer extends ImageClassifier {
  readonly numFeatures: number;
  readonly config: ViTConfig;

  constructor(
    readonly variant: ViTVariant | ViTConfig = 'vit_b_16',
    o: ModelOptions = {},
  ) {
    super();
    const cfg = typeof variant === 'string' ? VIT_CONFIGS[variant] : variant;
    if (!cfg) throw new UserError(`VisionTransformer: unknown variant "${String(variant)}" (known: ${Object.keys(VIT_CONFIGS).join(', ')})`);
    if (cfg.imageSize % cfg.patch !== 0) throw new UserError(`VisionTransformer: image size ${cfg.imageSize} is not a multiple of the patch ${cfg.patch}`);
    this.config = { ...cfg };
    const cin = o.inChannels ?? 3;
    const proj = this.registerModule('conv_proj', new Conv2d(cin, cfg.dim, cfg.patch, { stride: cfg.patch }));
    // torchvision: trunc_normal_(std = sqrt(1 / fan_in)) with its default bounds of -2 and 2, which
    // a std this small never reaches: a plain normal draw.
    normal(proj.weight, 0, Math.sqrt(1 / (cin * cfg.patch * cfg.patch)));
    fillZeros(proj.bias!);
    this.registerParameter('class_token', zeros([1, 1, cfg.dim]));
    const grid = cfg.imageSize / cfg.patch;
    this.registerModule('encoder', new Encoder(1 + grid * grid, cfg));
    this.numFeatures = cfg.dim;
    const fc = this.registerModule('fc', new Linear(cfg.dim, o.numClasses ?? 1000));
    fillZeros(fc.weight);
    fillZeros(fc.bias!);
  }

  get classToken(): Tensor {
    return this.getParameter('class_token');
  }

  /** Tokens [N, 1 + g*g, D] of images [N, C, g*patch, g*patch]: patch embedding, class token first. */
  embed(x: Tensor): Tensor {
    return tidy(() => {
      const p = this.config.patch;
      if (x.ndim !== 4 || x.size(2) !== x.size(3) || x.size(2) % p !== 0) {
        throw new UserError(`VisionTransformer: input must be square [N, C, S, S] with S a multiple of the patch ${p}, got [${x.shape.join(', ')}]`);
      }
      const y = this.getModule('conv_proj').forward(x); // [N, D, g, g]
      return prependClassToken(y.flatten(2).transpose(1, 2), this.classToken);
    });
  }

  /** The class token's row after the encoder's final LayerNorm: [N, dim]. Per-call arguments are not used by any ViT layer. */
  override forwardFeatures(x: Tensor, ..._call: unknown[]): Tensor {
    return tidy(() => this.getModule('encoder').forward(this.embed(x)).select(1, 0));
  }

  /** The residual stream entering encoder block `k` (0..depth) for images x: [N, 1 + g*g, dim]. */
  tokensAt(x: Tensor, k: number): Tensor {
    return tidy(() => {
      const enc = this.getModule('encoder') as Encoder;
      return enc.blocks(enc.prepare(this.embed(x)), 0, k);
    });
  }

  /** forwardFeatures from the residual stream entering block `k` (what tokensAt returns). */
  featuresFrom(tokens: Tensor, k: number): Tensor {
    return tidy(() => {
      const enc = this.getModule('encoder') as Encoder;
      return enc.getModule('ln').forward(enc.blocks(tokens, k, this.config.depth)).select(1, 0);
    });
  }

  /**
   * A torchvision VisionTransformer state dict made loadable here: `heads.head.*` renamed `fc.*`, and
   * `encoder.pos_embedding` resized (bicubic) to this model's grid when it was made for another
   * image size (as torchvision's interpolate_embeddings). Entries are moved into the result; the
   * replaced position embedding is disposed.
   */
  override fromTorchvision(sd: StateDict): StateDict {
    const out: StateDict = new Map();
    const grid = this.config.imageSize / this.config.patch;
    for (const [k, t] of sd) {
      if (k === 'encoder.pos_embedding' && t.ndim === 3 && t.size(1) !== 1 + grid * grid) {
        const r = resizePositionEmbedding(t, grid);
        if (r !== t) t.dispose();
        out.set(k, r);
      } else out.set(k.startsWith('heads.head.') ? `fc.${k.slice('heads.head.'.length)}` : k, t);
    }
    return out;
  }
}

/** Position embedding (resized to the tokens' grid), dropout, the blocks, the final LayerNorm. */
export class Encoder extends Module {
  constructor(seqLength: number, cfg: ViTConfig, dropout = 0) {
    super();
    this.registerParameter('pos_embedding', normal(empty([1, seqLength, cfg.dim]), 0, 0.02));
    this.registerModule('dropout', new Dropout(dropout));
    const layers = this.registerModule('layers', new Blocks());
    for (let i = 0; i < cfg.depth; i++) layers.registerModule(`encoder_layer_${i}`, new EncoderBlock(cfg.dim, cfg.heads, cfg.mlpDim, dropout));
    this.registerModule('ln', norm(cfg.dim));
  }
  get posEmbedding(): Tensor {
    return this.getParameter('pos_embedding');
  }
  /** tokens [N, 1 + g*g, D] -> normalised tokens [N, 1 + g*g, D]. */
  override forward(x: Tensor): Tensor {
    return tidy(() => this.getModule('ln').forward(this.getModule('layers').forward(this.prepare(x))));
  }
  /** The first block's input: tokens plus the position embedding (resized to their grid), after dropout. */
  prepare(x: Tensor): Tensor {
    return tidy(() => {
      const side = Math.round(Math.sqrt(x.size(1) - 1));
      return this.getModule('dropout').forward(x.add(resizePositionEmbedding(this.posEmbedding, side)));
    });
  }
  /** Blocks from..to-1 applied in order to the residual stream y (y itself when from = to). */
  blocks(y: Tensor, from: number, to: number): Tensor {
    const all = [...this.getModule('layers').children()];
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= all.length)) {
      throw new UserError(`ViT encoder: blocks ${from}..${to} out of range for ${all.length} blocks`);
    }
    return tidy(() => all.slice(from, to).reduce((t, m) => m.forward(t), y));
  }
}

/** The encoder blocks in order, named `encoder_layer_{i}` (torchvision's OrderedDict). */
class Blocks extends Module {
  override forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.children()) y = m.forward(y);
    return y;
  }
}

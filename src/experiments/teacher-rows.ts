// A teacher-cache output kept on disk (teacher-cache.ts writes it) as a RowTable: a batch reads its
// rows with pread (io/row-file.ts), so memory holds only those rows whatever the data set's size.
// Feature rows can be standardised on the way out with per-dimension statistics over the training
// set (computed once, after the fill, and stored beside the rows).
import { type Tensor, tensor, noGrad, tidy } from '../tensor/index.js';
import { RowFile, type RowShape } from '../io/row-file.js';
import type { RowTable } from './methods/method.js';

/** Per-dimension mean and standard deviation (population, with 1e-5 added to the variance). */
export interface ColumnStats {
  mean: number[];
  std: number[];
}

/** The rows of a table as a float32 tensor (B, width) on the CPU, in the current scope. */
function rowsTensor(file: RowFile, rows: ArrayLike<number>): Tensor {
  const bytes = file.read(rows);
  const shape = [rows.length, file.shape.width];
  if (file.shape.dtype === 'float32') return tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), shape);
  return tidy(() => tensor(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2), shape, { dtype: 'float16' }).float());
}

export class DiskRows implements RowTable {
  readonly width: number;
  readonly #file: RowFile;
  readonly #mean: Tensor | null;
  readonly #std: Tensor | null;

  /** Opens `file` for reading; with `stats`, rows come out standardised ((x - mean) / std). */
  constructor(file: string, shape: RowShape, stats: ColumnStats | null = null) {
    this.#file = RowFile.openForRead(file, shape);
    this.width = shape.width;
    this.#mean = stats && tensor(Float32Array.from(stats.mean), [1, shape.width]);
    this.#std = stats && tensor(Float32Array.from(stats.std), [1, shape.width]);
  }

  get shape(): RowShape {
    return this.#file.shape;
  }

  /** Rows by number (float32 (B, width) on the CPU, standardised when the table has statistics). */
  read(rows: ArrayLike<number>): Tensor {
    return noGrad(() =>
      tidy(() => {
        const x = rowsTensor(this.#file, rows);
        return this.#mean && this.#std ? x.sub(this.#mean).div(this.#std) : x;
      }),
    );
  }

  rows(rows: Tensor): Tensor {
    const ids = Array.from(rows.device === 'cpu' ? rows.toArray() : tidy(() => rows.to('cpu').toArray()), Number);
    const x = this.read(ids);
    if (rows.device === 'cpu') return x;
    return tidy(() => x.to(rows.device, { nonBlocking: false }));
  }

  /** The whole table as one tensor (small caches that fit a device). */
  all(): Tensor {
    return this.read(Array.from({ length: this.#file.shape.rows }, (_, i) => i));
  }

  dispose(): void {
    this.#file.close();
    this.#mean?.dispose();
    this.#std?.dispose();
  }
}

/** Per-dimension statistics of every row of a table, read `chunk` rows at a time (float64 sums). */
export function columnStats(file: string, shape: RowShape, chunk = 1024): ColumnStats {
  const f = RowFile.openForRead(file, shape);
  const w = shape.width;
  const sum = new Float64Array(w);
  const sq = new Float64Array(w);
  try {
    for (let r = 0; r < shape.rows; r += chunk) {
      const m = Math.min(chunk, shape.rows - r);
      const v = tidy(() => rowsTensor(f, Array.from({ length: m }, (_, i) => r + i)).toArray() as Float32Array);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < w; j++) {
          const x = v[i * w + j]!;
          sum[j] += x;
          sq[j] += x * x;
        }
      }
    }
  } finally {
    f.close();
  }
  const n = Math.max(shape.rows, 1);
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(sq, (s, j) => Math.sqrt(Math.max(s / n - mean[j]! * mean[j]!, 0) + 1e-5));
  return { mean, std };
}

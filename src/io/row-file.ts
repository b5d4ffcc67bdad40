// A table of fixed-width float rows on disk (float32 or float16, little-endian, row-major), written
// in chunks with pwrite and read a few rows at a time with pread, so a table larger than memory
// (the teacher cache of a million images) costs only the rows a batch asks for. Consecutive rows
// asked for together are read with one pread. Nothing here knows what the rows mean.
import { closeSync, constants, fstatSync, ftruncateSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import { causeOf, fileError } from './atomic.js';

export type RowDType = 'float32' | 'float16';

export const ROW_DTYPE_BYTES: Record<RowDType, number> = { float32: 4, float16: 2 };

export interface RowShape {
  rows: number;
  width: number;
  dtype: RowDType;
}

export class RowFile {
  readonly rowBytes: number;
  #fd: number | null;

  private constructor(
    readonly file: string,
    readonly shape: RowShape,
    fd: number,
  ) {
    this.rowBytes = shape.width * ROW_DTYPE_BYTES[shape.dtype];
    this.#fd = fd;
  }

  /** Opens (or creates) `file` for writing rows; its length is set to rows * width values (existing rows are kept). */
  static openForWrite(file: string, shape: RowShape): RowFile {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o644);
    } catch (e) {
      throw fileError(file, e, 'open');
    }
    const f = new RowFile(file, shape, fd);
    const want = shape.rows * f.rowBytes;
    try {
      if (fstatSync(fd).size !== want) ftruncateSync(fd, want);
    } catch (e) {
      closeSync(fd);
      throw fileError(file, e);
    }
    return f;
  }

  /** Opens `file` for reading; a file of another length than the shape says is refused in one line. */
  static openForRead(file: string, shape: RowShape): RowFile {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY);
    } catch (e) {
      throw new UserError(`${file}: cannot read (${causeOf(e)})`);
    }
    const f = new RowFile(file, shape, fd);
    const size = fstatSync(fd).size;
    if (size !== shape.rows * f.rowBytes) {
      closeSync(fd);
      throw new UserError(`${file}: holds ${size} bytes, expected ${shape.rows} rows of ${f.rowBytes} bytes (a truncated or foreign file)`);
    }
    return f;
  }

  #open(): number {
    if (this.#fd === null) throw new Error(`${this.file}: row file is closed`);
    return this.#fd;
  }

  /** Writes consecutive rows starting at `row` (bytes: whole rows). */
  write(row: number, bytes: Uint8Array): void {
    if (bytes.length % this.rowBytes !== 0 || row < 0 || row + bytes.length / this.rowBytes > this.shape.rows) {
      throw new RangeError(`${this.file}: cannot write ${bytes.length} bytes at row ${row}`);
    }
    const fd = this.#open();
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, row * this.rowBytes + done);
    } catch (e) {
      throw fileError(this.file, e);
    }
  }

  /** Flushes the written rows to the disk. */
  sync(): void {
    fsyncSync(this.#open());
  }

  /** The bytes of `rows` (any order, repeats allowed), row after row; runs of consecutive rows take one pread. */
  read(rows: ArrayLike<number>, out?: Uint8Array): Uint8Array {
    const rb = this.rowBytes;
    const dst = out ?? new Uint8Array(rows.length * rb);
    const fd = this.#open();
    for (let k = 0; k < rows.length; ) {
      const r = rows[k]!;
      if (!(Number.isInteger(r) && r >= 0 && r < this.shape.rows)) throw new RangeError(`${this.file}: no row ${r} (rows: ${this.shape.rows})`);
      let m = 1;
      while (k + m < rows.length && rows[k + m] === r + m && r + m < this.shape.rows) m++;
      const len = m * rb;
      let got = 0;
      while (got < len) {
        const n = readSync(fd, dst, k * rb + got, len - got, r * rb + got);
        if (n === 0) throw new UserError(`${this.file}: ended before row ${r + Math.floor(got / rb)} (a truncated file)`);
        got += n;
      }
      k += m;
    }
    return dst;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

// Deflated DICOM (transfer syntax 1.2.840.10008.1.2.1.99) inflated with a bound: the data set is
// inflated in steps until its Image Pixel module and the Pixel Data element are readable; the
// image size is then checked against the pixel limit, and inflating stops at the end of the last
// frame (frames x rows x columns x samples x bytes per sample after the Pixel Data offset). A 4 MB file that inflates to 4 GiB costs what its header declares, no more. Before
// the Pixel Data element is found at most HEADER_BYTES come out.
import { Inflate } from 'fflate';
import { type DataSetLike, DicomPixelError, type DicomParserLike } from './dicom-pixels.js';

/** Most bytes inflated before the Pixel Data element must have been reached. */
export const HEADER_BYTES = 64 * 2 ** 20;
/** Compressed bytes pushed per step: at most ~1032x that comes out of one step. */
const STEP = 4096;
const PIXEL_DATA = 'x7fe00010';

/** What the header declares about the first frame, once the Pixel Data element is readable. */
export interface DeclaredFrame {
  rows: number;
  columns: number;
  /** Offset of the first pixel byte within the full (meta header + inflated) bytes. */
  dataOffset: number;
  /** Bytes of one frame. */
  frameBytes: number;
  /** Number of Frames (0028,0008), 1 when absent. */
  frames: number;
}

/** The first frame's declaration in `ds`, or null while the Pixel Data element is not in it. */
export function declaredFrame(ds: DataSetLike): DeclaredFrame | null {
  const el = ds.elements[PIXEL_DATA];
  if (!el) return null;
  const rows = ds.uint16('x00280010') ?? 0;
  const columns = ds.uint16('x00280011') ?? 0;
  const spp = ds.uint16('x00280002') ?? 1;
  const bytes = Math.ceil((ds.uint16('x00280100') ?? 8) / 8);
  const frames = Math.max(1, ds.intString('x00280008') ?? 1);
  return { rows, columns, dataOffset: el.dataOffset, frameBytes: rows * columns * spp * bytes, frames };
}

/** The data set parsed up to (and including the header of) the Pixel Data element, or null when `full` does not reach it yet. */
function parseHead(parser: DicomParserLike, full: Uint8Array): DataSetLike | null {
  try {
    return parser.parseDicom(full, { untilTag: PIXEL_DATA, inflater: () => full });
  } catch {
    return null;
  }
}

export interface BoundedInflateOptions {
  /** Called with the declared image size as soon as it is known (throw to refuse it). */
  checkSize?: (rows: number, columns: number) => void;
  /** Stop as soon as the header is known (a size probe). */
  headerOnly?: boolean;
}

/**
 * A dicom-parser `inflater`: (file bytes, offset of the deflated data set) -> the meta header
 * followed by the inflated data set, cut at the end of the last frame.
 */
export function boundedInflater(parser: DicomParserLike, o: BoundedInflateOptions = {}): (bytes: Uint8Array, position: number) => Uint8Array {
  return (bytes, position) => {
    const chunks: Uint8Array[] = [bytes.subarray(0, position)];
    let total = position;
    const inflate = new Inflate();
    inflate.ondata = (c) => {
      chunks.push(c);
      total += c.length;
    };
    const join = (): Uint8Array => {
      const out = new Uint8Array(total);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      chunks.length = 0;
      chunks.push(out);
      return out;
    };
    let cap = position + HEADER_BYTES;
    let known = false;
    let nextProbe = position + 64 * 1024;
    for (let i = position; i < bytes.length && total < cap; i += STEP) {
      const end = Math.min(i + STEP, bytes.length);
      inflate.push(bytes.subarray(i, end), end === bytes.length);
      if (known || (total < nextProbe && end < bytes.length)) continue;
      nextProbe = 2 * total;
      const ds = parseHead(parser, join());
      const frame = ds && declaredFrame(ds);
      if (!frame) continue;
      o.checkSize?.(frame.rows, frame.columns);
      known = true;
      if (o.headerOnly) break;
      cap = frame.dataOffset + frame.frameBytes * frame.frames;
    }
    if (!known && total >= cap) throw new DicomPixelError(`no Pixel Data (7FE0,0010) within the first ${HEADER_BYTES} inflated bytes`);
    const full = join();
    return full.length > cap ? full.subarray(0, cap) : full;
  };
}

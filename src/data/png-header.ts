// PNG structure check before decoding: the header's size against the pixel limit, and the pixel
// data inflated with a bound (the size the header implies), so a file that claims more than it
// holds, or holds more than it claims, is refused before the decoder allocates anything.
import { inflateSync } from 'node:zlib';
import { UserError } from '../tensor/errors.js';
import { checkLimit } from '../io/limits.js';
import { crc32 } from './zip.js';

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

/** Samples per pixel of each PNG colour type, and its allowed bit depths. */
export const COLOR_TYPES: Record<number, { channels: number; depths: number[] }> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { channels: 3, depths: [8, 16] },
  3: { channels: 1, depths: [1, 2, 4, 8] },
  4: { channels: 2, depths: [8, 16] },
  6: { channels: 4, depths: [8, 16] },
};

/** Bytes of filtered scanlines (a filter byte per row) of a w x h image (0 rows: nothing). */
export function scanlineBytes(w: number, h: number, bitsPerPixel: number): number {
  return w === 0 || h === 0 ? 0 : h * (1 + Math.ceil((w * bitsPerPixel) / 8));
}

/** Adam7 passes: [x0, y0, dx, dy]. */
export const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

/** The exact size of the inflated IDAT stream the header implies. */
export function inflatedSize(h: PngHeader): number {
  const bpp = COLOR_TYPES[h.colorType]!.channels * h.bitDepth;
  if (!h.interlaced) return scanlineBytes(h.width, h.height, bpp);
  return ADAM7.reduce((s, [x0, y0, dx, dy]) => s + scanlineBytes(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy), bpp), 0);
}

/** A PNG's header, its inflated pixel data (filtered scanlines) and the chunks that colour it. */
export interface PngParts {
  header: PngHeader;
  /** The inflated IDAT stream: exactly inflatedSize(header) bytes of filtered scanlines. */
  scanlines: Uint8Array;
  /** PLTE entries as R, G, B bytes (3 per entry), or null. */
  palette: Uint8Array | null;
  /** tRNS chunk data, or null. */
  transparency: Uint8Array | null;
}

/**
 * Reads the chunk layout of a PNG (signature already checked), checks every chunk's CRC and the
 * header against the pixel limit, and inflates the pixel data with a bound: exactly the size the
 * header implies must come out. UserErrors name `name`.
 */
export function parsePng(bytes: Uint8Array, name: string): PngParts {
  const fail = (msg: string): never => {
    throw new UserError(`${name}: corrupt or unsupported PNG (${msg})`);
  };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 8;
  let header: PngHeader | null = null;
  // The IDAT chunks' data, gathered into one growing buffer (no object per chunk: a file of a
  // million empty IDAT chunks costs its bytes, not a million array entries).
  let idat = new Uint8Array(0);
  let idatBytes = 0;
  let idatChunks = 0;
  let palette: Uint8Array | null = null;
  let transparency: Uint8Array | null = null;
  let ended = false;
  while (p < bytes.length) {
    if (p + 12 > bytes.length) fail(`truncated: a chunk header is cut off at byte ${p}`);
    const len = dv.getUint32(p);
    const type = String.fromCharCode(bytes[p + 4]!, bytes[p + 5]!, bytes[p + 6]!, bytes[p + 7]!);
    if (p + 12 + len > bytes.length) fail(`truncated: chunk ${type} needs ${len} bytes, ${Math.max(0, bytes.length - p - 12)} are left`);
    const data = bytes.subarray(p + 8, p + 8 + len);
    if (crc32(bytes.subarray(p + 4, p + 8 + len)) !== dv.getUint32(p + 8 + len)) fail(`chunk ${type} at byte ${p} fails its CRC check`);
    if (header === null && type !== 'IHDR') fail('the first chunk is not IHDR');
    if (type === 'IHDR') {
      if (header !== null) fail('two IHDR chunks');
      if (len !== 13) fail(`IHDR has ${len} bytes, not 13`);
      const h: PngHeader = { width: dv.getUint32(p + 8), height: dv.getUint32(p + 12), bitDepth: data[8]!, colorType: data[9]!, interlaced: data[12] === 1 };
      if (!(h.width > 0 && h.height > 0)) fail(`size ${h.width}x${h.height}`);
      const ct = COLOR_TYPES[h.colorType];
      if (!ct || !ct.depths.includes(h.bitDepth)) fail(`colour type ${h.colorType} at bit depth ${h.bitDepth}`);
      if (data[12]! > 1) fail(`interlace method ${data[12]}`);
      checkLimit('imagePixels', h.width * h.height, `${name}: a ${h.width}x${h.height} PNG (${h.width * h.height} pixels)`);
      header = h;
    } else if (type === 'IDAT') {
      if (idatBytes + len > idat.length) {
        const grown = new Uint8Array(Math.max(idatBytes + len, 2 * idat.length));
        grown.set(idat.subarray(0, idatBytes));
        idat = grown;
      }
      idat.set(data, idatBytes);
      idatBytes += len;
      idatChunks++;
    } else if (type === 'PLTE') {
      palette = data;
    } else if (type === 'tRNS') {
      transparency = data;
    } else if (type === 'IEND') {
      ended = true;
      break;
    }
    p += 12 + len;
  }
  if (header === null) return fail('truncated: no IHDR chunk');
  if (idatChunks === 0) fail('truncated: no IDAT chunk (no pixel data)');
  if (!ended) fail('truncated: no IEND chunk, the file is cut off');
  const want = inflatedSize(header);
  let scanlines: Uint8Array;
  try {
    scanlines = inflateSync(idat.subarray(0, idatBytes), { maxOutputLength: Math.max(1, want), chunkSize: Math.max(64 * 1024, want + 1) });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') return fail(`its pixel data inflates beyond the ${want} bytes a ${header.width}x${header.height} image holds`);
    return fail(`pixel data: ${(e as Error).message}`);
  }
  if (scanlines.length < want) fail(`truncated: the pixel data holds ${scanlines.length} of the ${want} bytes a ${header.width}x${header.height} image needs, rows are missing`);
  return { header, scanlines, palette, transparency };
}

/** The header of a PNG after the checks of parsePng. */
export function checkPng(bytes: Uint8Array, name: string): PngHeader {
  return parsePng(bytes, name).header;
}

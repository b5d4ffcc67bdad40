// PNG decoding in the page with the same pixels as lorkd's Node reader (pngjs, src/data/images.ts):
// every colour type and bit depth, Adam7 interlacing, palettes, a tRNS transparent colour read as
// black (pngjs's rule), 16-bit and sub-byte samples scaled to 8 bits as floor(v * 255 / max + 0.5),
// alpha dropped with the colour kept (a canvas would premultiply it away), no gamma or colour
// profile applied. Plain ES module with no imports: `inflate` (zlib stream -> bytes) is passed in.

/** Largest image (pixels) the page decodes: lorkd's default LORKD_MAX_IMAGE_PIXELS. */
export const MAX_PIXELS = 8192 * 8192;

const ADAM7 = [
  // [x0, y0, dx, dy]
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

let crcTable;
function crc32(b, start, end) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Reverses the scanline filters of one pass in place; returns the rows (without filter bytes). */
function unfilter(data, offset, rows, rowBytes, bpp, fail) {
  const out = new Uint8Array(rows * rowBytes);
  for (let y = 0; y < rows; y++) {
    const at = offset + y * (rowBytes + 1);
    if (at + rowBytes + 1 > data.length) fail('image data is truncated');
    const type = data[at];
    const o = y * rowBytes;
    for (let x = 0; x < rowBytes; x++) {
      const raw = data[at + 1 + x];
      const a = x >= bpp ? out[o + x - bpp] : 0;
      const b = y > 0 ? out[o - rowBytes + x] : 0;
      const c = x >= bpp && y > 0 ? out[o - rowBytes + x - bpp] : 0;
      let v;
      if (type === 0) v = raw;
      else if (type === 1) v = raw + a;
      else if (type === 2) v = raw + b;
      else if (type === 3) v = raw + ((a + b) >> 1);
      else if (type === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v = raw + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      } else fail(`unknown filter type ${type}`);
      out[o + x] = v & 0xff;
    }
  }
  return out;
}

/** Sample k of a row at `depth` bits (big-endian for 16, most significant bits first below 8). */
function sampleAt(row, o, k, depth) {
  if (depth === 8) return row[o + k];
  if (depth === 16) return (row[o + 2 * k] << 8) | row[o + 2 * k + 1];
  const bit = k * depth;
  return (row[o + (bit >> 3)] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
}

/**
 * PNG bytes -> { width, height, data (uint8 CHW RGB), grey }. `inflate` decompresses a zlib
 * stream. Errors are one line: `${name}: corrupt or unsupported PNG (reason)`.
 */
export function decodePng(bytes, name, inflate) {
  const fail = (m) => {
    throw new Error(`${name}: corrupt or unsupported PNG (${m})`);
  };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let ihdr;
  let palette;
  let trns;
  const idat = [];
  let ended = false;
  while (pos + 12 <= bytes.length && !ended) {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
    const start = pos + 8;
    if (start + len + 4 > bytes.length) fail(`chunk ${type} runs past the end of the file`);
    if (crc32(bytes, pos + 4, start + len) !== dv.getUint32(start + len)) fail(`bad CRC in chunk ${type}`);
    const d = bytes.subarray(start, start + len);
    if (type === 'IHDR') {
      if (len !== 13) fail('IHDR is not 13 bytes');
      ihdr = { width: dv.getUint32(start), height: dv.getUint32(start + 4), depth: d[8], colorType: d[9], compression: d[10], filter: d[11], interlace: d[12] };
    } else if (type === 'PLTE') palette = d;
    else if (type === 'tRNS') trns = d;
    else if (type === 'IDAT') idat.push(d);
    else if (type === 'IEND') ended = true;
    pos = start + len + 4;
  }
  if (!ihdr) fail('no IHDR chunk');
  const { width, height, depth, colorType: ct, interlace } = ihdr;
  if (!(width > 0 && height > 0)) fail(`image size ${width}x${height}`);
  if (width * height > MAX_PIXELS) fail(`a ${width}x${height} image is larger than the app decodes (${MAX_PIXELS} pixels)`);
  if (!(ct in CHANNELS) || !DEPTHS[ct].includes(depth)) fail(`colour type ${ct} with bit depth ${depth}`);
  if (ihdr.compression !== 0 || ihdr.filter !== 0 || interlace > 1) fail('unknown compression, filter or interlace method');
  if (ct === 3 && !palette) fail('palette image without a PLTE chunk');
  if (idat.length === 0) fail('no image data');
  const joined = new Uint8Array(idat.reduce((s, c) => s + c.length, 0));
  idat.reduce((o, c) => (joined.set(c, o), o + c.length), 0);
  let data;
  try {
    data = inflate(joined);
  } catch (e) {
    fail(`image data does not inflate (${e && e.message ? e.message : e})`);
  }
  const ch = CHANNELS[ct];
  const bpp = Math.max(1, (ch * depth) >> 3);
  // tRNS: the transparent grey or RGB value (raw samples) -> black; palette alpha is dropped.
  const trans = trns && ct === 0 && trns.length >= 2 ? [(trns[0] << 8) | trns[1]] : trns && ct === 2 && trns.length >= 6 ? [(trns[0] << 8) | trns[1], (trns[2] << 8) | trns[3], (trns[4] << 8) | trns[5]] : null;
  const max = (1 << depth) - 1;
  const scale = (v) => (depth === 8 ? v : Math.floor((v * 255) / max + 0.5));
  const hw = width * height;
  const out = new Uint8Array(3 * hw);
  const passes = interlace ? ADAM7 : [[0, 0, 1, 1]];
  let offset = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx);
    const ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rowBytes = Math.ceil((pw * ch * depth) / 8);
    const rows = unfilter(data, offset, ph, rowBytes, bpp, fail);
    offset += ph * (rowBytes + 1);
    for (let j = 0; j < ph; j++) {
      const o = j * rowBytes;
      for (let i = 0; i < pw; i++) {
        const p = (y0 + j * dy) * width + x0 + i * dx;
        let r, g, b;
        if (ct === 3) {
          const k = sampleAt(rows, o, i, depth);
          if (3 * k + 2 >= palette.length) fail(`index ${k} not in palette`);
          r = palette[3 * k];
          g = palette[3 * k + 1];
          b = palette[3 * k + 2];
        } else if (ct === 0 || ct === 4) {
          const v = sampleAt(rows, o, i * ch, depth);
          r = g = b = trans && trans[0] === v ? 0 : scale(v);
        } else {
          const s = [0, 1, 2].map((c) => sampleAt(rows, o, i * ch + c, depth));
          const black = trans && trans[0] === s[0] && trans[1] === s[1] && trans[2] === s[2];
          [r, g, b] = black ? [0, 0, 0] : s.map(scale);
        }
        out[p] = r;
        out[hw + p] = g;
        out[2 * hw + p] = b;
      }
    }
  }
  return { width, height, data: out, grey: ct === 0 || ct === 4 };
}

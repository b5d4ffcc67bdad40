// Test-only DICOM writing: a minimal Part 10 file (explicit VR little endian data set) with native
// or encapsulated pixel data, and the Debian tools that compress it independently of lorkd:
// DCMTK's dcmcjpeg (JPEG Lossless, 12-bit JPEG Extended) and OpenJPH's ojph_compress (HTJ2K code
// streams, wrapped here). Tests that need a tool skip cleanly without it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export const DCMCJPEG = '/usr/bin/dcmcjpeg';
export const OJPH_COMPRESS = '/usr/bin/ojph_compress';
export const OJPH_EXPAND = '/usr/bin/ojph_expand';
export const hasDcmtk = existsSync(DCMCJPEG);
export const hasOpenjph = existsSync(OJPH_COMPRESS) && existsSync(OJPH_EXPAND);

export interface PixelModule {
  rows: number;
  columns: number;
  samplesPerPixel?: number;
  photometric?: string;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation?: number;
  frames?: number;
  window?: { center: number; width: number };
}

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const LONG_VRS = new Set(['OB', 'OW', 'UN', 'SQ', 'UT']);

function element(group: number, elem: number, vr: string, value: Uint8Array): Uint8Array {
  const long = LONG_VRS.has(vr);
  const head = new DataView(new ArrayBuffer(long ? 12 : 8));
  head.setUint16(0, group, true);
  head.setUint16(2, elem, true);
  head.setUint8(4, vr.charCodeAt(0));
  head.setUint8(5, vr.charCodeAt(1));
  if (long) head.setUint32(8, value.length, true);
  else head.setUint16(6, value.length, true);
  return concat([new Uint8Array(head.buffer), value]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A text value padded to even length (UI with NUL, others with a space). */
const text = (s: string, vr: string): Uint8Array => new TextEncoder().encode(s.length % 2 ? s + (vr === 'UI' ? '\0' : ' ') : s);
const us = (v: number): Uint8Array => new Uint8Array(new Uint16Array([v]).buffer);
const ul = (v: number): Uint8Array => new Uint8Array(new Uint32Array([v]).buffer);

/** An item or delimiter tag (FFFE,xxxx) with a 32-bit length. */
function itemTag(elem: number, length: number): Uint8Array {
  const v = new DataView(new ArrayBuffer(8));
  v.setUint16(0, 0xfffe, true);
  v.setUint16(2, elem, true);
  v.setUint32(4, length, true);
  return new Uint8Array(v.buffer);
}

/**
 * A DICOM Part 10 file: `pixels` native little-endian bytes (transfer syntax explicit VR little
 * endian), or `fragments` (one encapsulated frame each, empty basic offset table) under `ts`.
 */
export function dicomFile(p: PixelModule, data: { pixels: Uint8Array } | { fragments: Uint8Array[]; ts: string }): Uint8Array {
  const ts = 'pixels' in data ? EXPLICIT_LE : data.ts;
  const sopClass = '1.2.840.10008.5.1.4.1.1.7';
  const sopInstance = '1.2.826.0.1.3680043.8.498.1';
  const meta = concat([
    element(0x0002, 0x0001, 'OB', new Uint8Array([0, 1])),
    element(0x0002, 0x0002, 'UI', text(sopClass, 'UI')),
    element(0x0002, 0x0003, 'UI', text(sopInstance, 'UI')),
    element(0x0002, 0x0010, 'UI', text(ts, 'UI')),
    element(0x0002, 0x0012, 'UI', text('1.2.826.0.1.3680043.8.498.2', 'UI')),
  ]);
  const samples = p.samplesPerPixel ?? 1;
  const frames = p.frames ?? 1;
  const pixelData =
    'pixels' in data
      ? element(0x7fe0, 0x0010, p.bitsAllocated > 8 ? 'OW' : 'OB', data.pixels.length % 2 ? concat([data.pixels, new Uint8Array(1)]) : data.pixels)
      : concat([
          new Uint8Array(new DataView(new Uint16Array([0x7fe0, 0x0010]).buffer).buffer),
          new TextEncoder().encode('OB'),
          new Uint8Array(2),
          ul(0xffffffff),
          itemTag(0xe000, 0),
          ...data.fragments.flatMap((f) => {
            const even = f.length % 2 ? concat([f, new Uint8Array(1)]) : f;
            return [itemTag(0xe000, even.length), even];
          }),
          itemTag(0xe0dd, 0),
        ]);
  const ds = concat([
    element(0x0008, 0x0016, 'UI', text(sopClass, 'UI')),
    element(0x0008, 0x0018, 'UI', text(sopInstance, 'UI')),
    element(0x0028, 0x0002, 'US', us(samples)),
    element(0x0028, 0x0004, 'CS', text(p.photometric ?? (samples === 3 ? 'RGB' : 'MONOCHROME2'), 'CS')),
    ...(samples === 3 ? [element(0x0028, 0x0006, 'US', us(0))] : []),
    ...(frames > 1 ? [element(0x0028, 0x0008, 'IS', text(String(frames), 'IS'))] : []),
    element(0x0028, 0x0010, 'US', us(p.rows)),
    element(0x0028, 0x0011, 'US', us(p.columns)),
    element(0x0028, 0x0100, 'US', us(p.bitsAllocated)),
    element(0x0028, 0x0101, 'US', us(p.bitsStored)),
    element(0x0028, 0x0102, 'US', us(p.bitsStored - 1)),
    element(0x0028, 0x0103, 'US', us(p.pixelRepresentation ?? 0)),
    ...(p.window ? [element(0x0028, 0x1050, 'DS', text(String(p.window.center), 'DS')), element(0x0028, 0x1051, 'DS', text(String(p.window.width), 'DS'))] : []),
    pixelData,
  ]);
  const preamble = new Uint8Array(132);
  preamble.set(new TextEncoder().encode('DICM'), 128);
  return concat([preamble, element(0x0002, 0x0000, 'UL', ul(meta.length)), meta, ds]);
}

/** Runs a Debian tool; its failure is a test failure with its stderr. */
export function tool(bin: string, args: string[]): void {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (status ${r.status}): ${r.stderr}${r.stdout}`);
}

/** A frame as a binary PGM (1 sample per pixel) or PPM (3, interleaved); 16-bit samples big endian, as the format says. */
export function writePnm(file: string, values: ArrayLike<number>, rows: number, columns: number, maxval: number, samples: 1 | 3 = 1): void {
  const head = new TextEncoder().encode(`${samples === 3 ? 'P6' : 'P5'}\n${columns} ${rows}\n${maxval}\n`);
  const wide = maxval > 255;
  const body = new Uint8Array(values.length * (wide ? 2 : 1));
  const v = new DataView(body.buffer);
  for (let i = 0; i < values.length; i++) {
    if (wide) v.setUint16(2 * i, values[i]!, false);
    else body[i] = values[i]!;
  }
  writeFileSync(file, concat([head, body]));
}

/** The samples of a binary PGM or PPM (8- or 16-bit), interleaved. */
export function readPnm(file: string): { rows: number; columns: number; values: Int32Array } {
  const b = readFileSync(file);
  const m = /^P([56])\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(b.subarray(0, 64).toString('latin1'));
  if (!m) throw new Error(`${file}: not a binary PGM or PPM`);
  const [samples, columns, rows, maxval] = [m[1] === '6' ? 3 : 1, Number(m[2]), Number(m[3]), Number(m[4])];
  const body = b.subarray(m[0].length);
  const values = new Int32Array(rows * columns * samples);
  for (let i = 0; i < values.length; i++) values[i] = maxval > 255 ? body.readUInt16BE(2 * i) : body[i]!;
  return { rows, columns, values };
}

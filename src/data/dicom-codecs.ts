// Decoders of DICOM's compressed transfer syntaxes (PS3.5 A.4), for dicom-pixels.ts's codec seam:
// one encapsulated frame -> native pixel bytes, little endian, interleaved by pixel.
//   JPEG Baseline (8-bit)           @cornerstonejs/codec-libjpeg-turbo-8bit (libjpeg-turbo, WASM)
//   JPEG Lossless (Process 14, SV1) jpeg-lossless-decoder-js (pure JS)
//   JPEG-LS lossless / near-lossless @cornerstonejs/codec-charls (CharLS, WASM)
//   JPEG 2000 lossless / lossy      @cornerstonejs/codec-openjpeg (OpenJPEG, WASM)
// Each WASM module is compiled and instantiated synchronously the first time its syntax is met
// (tens of ms), so decoding stays a plain synchronous call everywhere: predict, serve's decode
// workers and lorkd pack's workers. A colour JPEG or JPEG 2000 frame comes out as RGB (the
// codecs undo YCbCr / the component transform), so the photometric interpretation becomes RGB.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type DicomCodecs, DicomPixelError, type DicomPixelInfo } from './dicom-pixels.js';

const require = createRequire(import.meta.url);

/** jpeg-lossless-decoder-js ships no types: the one call used here. */
const { Decoder: LosslessDecoder } = require('jpeg-lossless-decoder-js') as {
  Decoder: new () => { decode(buffer: ArrayBuffer, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array };
};

/** The part of the WebAssembly global used here (the project's lib settings leave it untyped). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}
const WASM = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

/** What the cornerstone codecs' embind decoders have in common. */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getInterleaveMode?(): number;
  delete(): void;
}
type WasmModule = Record<string, new () => WasmDecoder>;

const modules = new Map<string, WasmModule>();

/** The codec package's decoder module, instantiated synchronously once per thread. */
function wasmModule(pkg: string): WasmModule {
  const have = modules.get(pkg);
  if (have) return have;
  const factory = require(`${pkg}/decodewasmjs`) as (arg: object) => Promise<unknown>;
  const bytes = readFileSync(require.resolve(`${pkg}/decodewasm`));
  const arg: Record<string, unknown> = {
    // OpenJPEG logs every header it reads: keep stdout for lorkd's own output.
    print: () => {},
    printErr: () => {},
    instantiateWasm(imports: object, done: (i: object, m: object) => void) {
      const mod = new WASM.Module(bytes);
      const inst = new WASM.Instance(mod, imports);
      done(inst, mod);
      return inst.exports;
    },
  };
  // Emscripten fills `arg` (its Module) while the factory runs; the promise resolves to it too.
  factory(arg).catch(() => {});
  modules.set(pkg, arg as unknown as WasmModule);
  return arg as unknown as WasmModule;
}

const fail = (m: string): never => {
  throw new DicomPixelError(m);
};

/** Checks a decoded frame against the header: size, samples, bytes per sample. */
function checkDecoded(what: string, got: { width: number; height: number; components: number; bytes: number }, info: DicomPixelInfo): void {
  if (got.width !== info.columns || got.height !== info.rows) fail(`${what} frame is ${got.width}x${got.height}, the header says ${info.columns}x${info.rows}`);
  if (got.components !== info.samplesPerPixel) fail(`${what} frame has ${got.components} components, the header says ${info.samplesPerPixel} samples per pixel`);
  const want = info.rows * info.columns * info.samplesPerPixel * (info.bitsAllocated / 8);
  if (got.bytes !== want) fail(`${what} frame decodes to ${got.bytes} bytes, ${want} expected (${info.bitsAllocated} bits allocated)`);
}

/** Interleaves planar samples (all of component 0, then 1, then 2) of 8-bit RGB. */
function interleave(planes: Uint8Array, hw: number): Uint8Array {
  const out = new Uint8Array(3 * hw);
  for (let p = 0; p < hw; p++) for (let c = 0; c < 3; c++) out[3 * p + c] = planes[c * hw + p]!;
  return out;
}

function wasmCodec(pkg: string, cls: string, what: string, colour: 'RGB' | null) {
  return (frame: Uint8Array, info: DicomPixelInfo): { bytes: Uint8Array; photometric?: string } => {
    let d: WasmDecoder | null = null;
    try {
      d = new (wasmModule(pkg)[cls]!)();
      d.getEncodedBuffer(frame.length).set(frame);
      d.decode();
      const fi = d.getFrameInfo();
      let bytes: Uint8Array = d.getDecodedBuffer().slice();
      checkDecoded(what, { width: fi.width, height: fi.height, components: fi.componentCount, bytes: bytes.length }, info);
      // JPEG-LS interleave mode 0 (none) gives the components one after another.
      if (fi.componentCount === 3 && d.getInterleaveMode?.() === 0) bytes = interleave(bytes, fi.width * fi.height);
      return { bytes, ...(colour && fi.componentCount === 3 ? { photometric: colour } : {}) };
    } catch (e) {
      if (e instanceof DicomPixelError) throw e;
      return fail(`corrupt ${what} frame (${typeof e === 'number' ? `codec error ${e}` : ((e as Error)?.message ?? String(e)).split('\n')[0]})`);
    } finally {
      d?.delete();
    }
  };
}

function losslessJpeg(frame: Uint8Array, info: DicomPixelInfo): { bytes: Uint8Array } {
  const numBytes = info.bitsAllocated / 8;
  let out: Uint8Array | Uint16Array;
  try {
    const copy = frame.slice();
    out = new LosslessDecoder().decode(copy.buffer, 0, copy.byteLength, numBytes);
  } catch (e) {
    return fail(`corrupt JPEG Lossless frame (${((e as Error)?.message ?? String(e)).split('\n')[0]})`);
  }
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  checkDecoded('JPEG Lossless', { width: info.columns, height: info.rows, components: info.samplesPerPixel, bytes: bytes.length }, info);
  return { bytes };
}

const baseline = wasmCodec('@cornerstonejs/codec-libjpeg-turbo-8bit', 'JPEGDecoder', 'JPEG Baseline', 'RGB');
const jpegLs = wasmCodec('@cornerstonejs/codec-charls', 'JpegLSDecoder', 'JPEG-LS', null);
const j2k = wasmCodec('@cornerstonejs/codec-openjpeg', 'J2KDecoder', 'JPEG 2000', 'RGB');

/** The codecs by transfer syntax UID. */
export const DICOM_CODECS: DicomCodecs = {
  '1.2.840.10008.1.2.4.50': baseline,
  '1.2.840.10008.1.2.4.51': (frame, info) => (info.bitsAllocated === 8 ? baseline(frame, info) : fail(`JPEG Extended with ${info.bitsStored} bits stored is not supported (8-bit is)`)),
  '1.2.840.10008.1.2.4.57': losslessJpeg,
  '1.2.840.10008.1.2.4.70': losslessJpeg,
  '1.2.840.10008.1.2.4.80': jpegLs,
  '1.2.840.10008.1.2.4.81': jpegLs,
  '1.2.840.10008.1.2.4.90': j2k,
  '1.2.840.10008.1.2.4.91': j2k,
};

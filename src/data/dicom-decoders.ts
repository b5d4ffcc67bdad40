// Decoders of DICOM's compressed transfer syntaxes (PS3.5 A.4) with no dependencies (no Node, no
// npm import): one encapsulated frame -> native pixel bytes, little endian, interleaved by pixel,
// for dicom-pixels.ts's codec seam. Node (dicom-codecs.ts) and the browser app (site/codecs.js,
// which loads the compiled file as it is) pass the same loader interface: the instantiated WASM
// module of a codec, and jpeg-lossless-decoder-js's Decoder class.
//   JPEG Baseline (8-bit)            @cornerstonejs/codec-libjpeg-turbo-8bit (libjpeg-turbo, WASM)
//   JPEG Extended 12-bit             jpeg12.ts (lorkd's own; none is published on npm)
//   JPEG Lossless (Process 14)       jpeg-lossless-decoder-js (pure JS)
//   JPEG-LS lossless / near-lossless @cornerstonejs/codec-charls (CharLS, WASM)
//   JPEG 2000 lossless / lossy       @cornerstonejs/codec-openjpeg (OpenJPEG, WASM)
//   HTJ2K (all three syntaxes)       @cornerstonejs/codec-openjph (OpenJPH, WASM)
// A colour JPEG, JPEG 2000 or HTJ2K frame comes out as RGB (the codecs undo YCbCr / the component
// transform), so the photometric interpretation becomes RGB.
import { type DicomCodecs, DicomPixelError, type DicomPixelInfo } from './dicom-pixels.js';
import { decodeJpegSequential, JpegError } from './jpeg12.js';

/** One cornerstone WASM codec build: where its files are and what its glue defines. */
export interface WasmCodecBuild {
  /** The npm package. */
  pkg: string;
  /** Package export of the emscripten glue (a classic script: CommonJS in Node, a global in a page). */
  glueExport: string;
  /** Package export of the .wasm binary. */
  wasmExport: string;
  /** File names of the glue and the binary (the browser app serves them as vendor/NAME). */
  glueFile: string;
  wasmFile: string;
  /** The global variable the glue defines when loaded as a page script. */
  global: string;
  /** The embind decoder class. */
  decoder: string;
  /** The syntax family, for messages. */
  what: string;
}

export const WASM_CODECS = {
  'libjpeg-turbo': {
    pkg: '@cornerstonejs/codec-libjpeg-turbo-8bit',
    glueExport: 'decodewasmjs',
    wasmExport: 'decodewasm',
    glueFile: 'libjpegturbowasm_decode.js',
    wasmFile: 'libjpegturbowasm_decode.wasm',
    global: 'libjpegturbowasm_decode',
    decoder: 'JPEGDecoder',
    what: 'JPEG Baseline',
  },
  charls: {
    pkg: '@cornerstonejs/codec-charls',
    glueExport: 'decodewasmjs',
    wasmExport: 'decodewasm',
    glueFile: 'charlswasm_decode.js',
    wasmFile: 'charlswasm_decode.wasm',
    global: 'CharLSWASM',
    decoder: 'JpegLSDecoder',
    what: 'JPEG-LS',
  },
  openjpeg: {
    pkg: '@cornerstonejs/codec-openjpeg',
    glueExport: 'decodewasmjs',
    wasmExport: 'decodewasm',
    glueFile: 'openjpegwasm_decode.js',
    wasmFile: 'openjpegwasm_decode.wasm',
    global: 'OpenJPEGWASM',
    decoder: 'J2KDecoder',
    what: 'JPEG 2000',
  },
  openjph: {
    pkg: '@cornerstonejs/codec-openjph',
    glueExport: 'wasmjs',
    wasmExport: 'wasm',
    glueFile: 'openjphjs.js',
    wasmFile: 'openjphjs.wasm',
    global: 'Module',
    decoder: 'HTJ2KDecoder',
    what: 'HTJ2K',
  },
} as const satisfies Record<string, WasmCodecBuild>;

export type WasmCodecName = keyof typeof WASM_CODECS;
/** What a transfer syntax needs: a WASM codec, or jpeg-lossless-decoder-js. */
export type CodecName = WasmCodecName | 'jpeg-lossless';

/** The codec each decoded compressed transfer syntax needs, by UID. */
export const CODEC_OF: Readonly<Record<string, CodecName>> = {
  '1.2.840.10008.1.2.4.50': 'libjpeg-turbo',
  '1.2.840.10008.1.2.4.51': 'libjpeg-turbo',
  '1.2.840.10008.1.2.4.57': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.70': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.80': 'charls',
  '1.2.840.10008.1.2.4.81': 'charls',
  '1.2.840.10008.1.2.4.90': 'openjpeg',
  '1.2.840.10008.1.2.4.91': 'openjpeg',
  '1.2.840.10008.1.2.4.201': 'openjph',
  '1.2.840.10008.1.2.4.202': 'openjph',
  '1.2.840.10008.1.2.4.203': 'openjph',
};

/** What the cornerstone codecs' embind decoders have in common. */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getInterleaveMode?(): number;
  delete(): void;
}
/** An instantiated codec module: its embind classes by name. */
export type WasmModule = Record<string, new () => WasmDecoder>;

/** jpeg-lossless-decoder-js's Decoder (the one call used here). */
export type LosslessDecoderClass = new () => { decode(buffer: ArrayBuffer, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array };

/** Where the decoders get their codecs; each is asked for only when its syntax is met. */
export interface CodecLoader {
  wasm(name: WasmCodecName): WasmModule;
  lossless(): LosslessDecoderClass;
}

/** An emscripten MODULARIZE factory (the glue's export). */
export type EmscriptenFactory = (moduleArg: object) => Promise<unknown>;

/** The part of the WebAssembly global used here (the project's lib settings leave it untyped). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: object }; module: object }>;
}
const WASM = (): Wasm => (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

// OpenJPEG logs every header it reads: keep the console for lorkd's own output.
const quiet = { print: () => {}, printErr: () => {} };

/**
 * Instantiates a codec's glue with its binary synchronously (Node: decoding stays a plain call in
 * every worker). Emscripten fills the module object while the factory runs.
 */
export function instantiateSync(factory: EmscriptenFactory, bytes: Uint8Array): WasmModule {
  const arg: Record<string, unknown> = {
    ...quiet,
    instantiateWasm(imports: object, done: (i: object, m: object) => void) {
      const mod = new (WASM().Module)(bytes);
      const inst = new (WASM().Instance)(mod, imports);
      done(inst, mod);
      return inst.exports;
    },
  };
  factory(arg).catch(() => {});
  return arg as unknown as WasmModule;
}

/** The same, compiled asynchronously (a page's main thread may not compile large modules synchronously). */
export async function instantiateAsync(factory: EmscriptenFactory, bytes: Uint8Array): Promise<WasmModule> {
  return (await factory({
    ...quiet,
    instantiateWasm(imports: object, done: (i: object, m: object) => void) {
      WASM()
        .instantiate(bytes, imports)
        .then((r) => done(r.instance, r.module));
      return {};
    },
  })) as WasmModule;
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

type Codec = DicomCodecs[string];

function wasmCodec(load: CodecLoader, name: WasmCodecName, colour: 'RGB' | null): Codec {
  const { decoder, what } = WASM_CODECS[name];
  return (frame, info) => {
    let d: WasmDecoder | null = null;
    try {
      d = new (load.wasm(name)[decoder]!)();
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

function losslessCodec(load: CodecLoader): Codec {
  return (frame, info) => {
    const numBytes = info.bitsAllocated / 8;
    let out: Uint8Array | Uint16Array;
    try {
      // A fresh copy at offset 0 (a Buffer's slice would share the file's memory and offset).
      const copy = new Uint8Array(frame);
      out = new (load.lossless())().decode(copy.buffer, 0, copy.byteLength, numBytes);
    } catch (e) {
      return fail(`corrupt JPEG Lossless frame (${((e as Error)?.message ?? String(e)).split('\n')[0]})`);
    }
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    checkDecoded('JPEG Lossless', { width: info.columns, height: info.rows, components: info.samplesPerPixel, bytes: bytes.length }, info);
    return { bytes };
  };
}

/**
 * JPEG Extended frames that are not 8-bit (12 bits stored, in 16 bits allocated): lorkd's own
 * sequential decoder, bit-exact with IJG libjpeg (DCMTK's dcmdjpeg). Samples come out as 16-bit.
 */
function extendedCodec(): Codec {
  return (frame, info) => {
    let img;
    try {
      // the size is checked from the frame header, before the decoder allocates for it
      img = decodeJpegSequential(frame, (f) => checkDecoded('JPEG Extended', { ...f, bytes: f.width * f.height * f.components * 2 }, info));
    } catch (e) {
      if (e instanceof JpegError) return fail(`JPEG Extended frame: ${e.message}`);
      throw e;
    }
    const bytes = new Uint8Array(img.samples.length * 2);
    for (let i = 0; i < img.samples.length; i++) {
      bytes[2 * i] = img.samples[i]! & 0xff;
      bytes[2 * i + 1] = img.samples[i]! >> 8;
    }
    return { bytes, ...(img.colour === 'RGB' ? { photometric: 'RGB' } : {}) };
  };
}

/**
 * The decoders by transfer syntax UID, over `load`. JPEG Extended (.51) goes to libjpeg-turbo when
 * 8-bit, else (12-bit) to jpeg12.ts: no decoder for it is published on npm (docs/DEPLOY.md).
 */
export function makeDicomCodecs(load: CodecLoader): DicomCodecs {
  const baseline = wasmCodec(load, 'libjpeg-turbo', 'RGB');
  const lossless = losslessCodec(load);
  const jpegLs = wasmCodec(load, 'charls', null);
  const j2k = wasmCodec(load, 'openjpeg', 'RGB');
  const htj2k = wasmCodec(load, 'openjph', 'RGB');
  const extended = extendedCodec();
  return {
    '1.2.840.10008.1.2.4.50': baseline,
    '1.2.840.10008.1.2.4.51': (frame, info) => (info.bitsAllocated === 8 ? baseline : extended)(frame, info),
    '1.2.840.10008.1.2.4.57': lossless,
    '1.2.840.10008.1.2.4.70': lossless,
    '1.2.840.10008.1.2.4.80': jpegLs,
    '1.2.840.10008.1.2.4.81': jpegLs,
    '1.2.840.10008.1.2.4.90': j2k,
    '1.2.840.10008.1.2.4.91': j2k,
    '1.2.840.10008.1.2.4.201': htj2k,
    '1.2.840.10008.1.2.4.202': htj2k,
    '1.2.840.10008.1.2.4.203': htj2k,
  };
}
